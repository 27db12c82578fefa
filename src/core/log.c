#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static const char *log_program = "tern";
static enum log_level log_min = LOG_LEVEL_INFO;
static int log_syslog;

static const char *const level_names[] = { "debug", "info", "warning", "error" };

void
log_open(const char *program, enum log_level min, int use_syslog)
{
	log_program = program;
	log_min = min;
	log_syslog = use_syslog;
	if (use_syslog)
		openlog(program, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

int
log_level_parse(const char *s, enum log_level *level_r)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*level_r = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

static void
log_write(enum log_level level, const char *fmt, va_list ap)
{
	if (level < log_min)
		return;
	char text[2048];
	vsnprintf(text, sizeof(text), fmt, ap);
	/* Peer data may reach a log line: keep each event on one line. */
	for (char *p = text; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20)
			*p = '?';
	if (log_syslog) {
		static const int prio[] = { LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR };
		syslog(prio[level], "%s: %s", level_names[level], text);
		return;
	}
	struct timeval tv;
	gettimeofday(&tv, NULL);
	struct tm tm;
	gmtime_r(&tv.tv_sec, &tm);
	char stamp[32];
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(stderr, "%s.%03ldZ %s[%d]: %s: %s\n", stamp, (long)tv.tv_usec / 1000,
		log_program, (int)getpid(), level_names[level], text);
}

#define LOG_FN(name, level)                     \
	void name(const char *fmt, ...)         \
	{                                       \
		va_list ap;                     \
		va_start(ap, fmt);              \
		log_write(level, fmt, ap);      \
		va_end(ap);                     \
	}

LOG_FN(log_debug, LOG_LEVEL_DEBUG)
LOG_FN(log_info, LOG_LEVEL_INFO)
LOG_FN(log_warn, LOG_LEVEL_WARN)
LOG_FN(log_err, LOG_LEVEL_ERR)
