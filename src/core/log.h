#ifndef TERN_CORE_LOG_H
#define TERN_CORE_LOG_H

/*
 * One line per event: "<time> <program>[pid]: <level>: <text>". Callers put the
 * session or queue ID first in the text. Never log a password or message content.
 */
enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERR };

void log_open(const char *program, enum log_level min, int use_syslog);
int log_level_parse(const char *s, enum log_level *level_r);
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
