/*
 * COPY and UID COPY (RFC 3501 §6.4.7, §6.4.8), MOVE and UID MOVE (RFC
 * 6851), answering with COPYUID (RFC 4315 §3).
 *
 * A copy is a hard link of the source file: Maildir files are never
 * rewritten, only renamed, and the flags live in each name, so the two
 * names can never disagree about content. The link is made in the
 * target's tmp/ under a new unique name (whose leading seconds keep the
 * source's INTERNALDATE, §6.4.7 "SHOULD preserve") with the source's flags
 * and keywords (in the target's letters); then
 * index_append gives all of them UIDs at once and renames them into cur/.
 * Either every message is copied or none is (§6.4.7).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/util.h"
#include "imap/imap_parse.h"
#include "imap/imap_private.h"
#include "imap/imap_seqset.h"
#include "io/conn.h"
#include "io/server.h"
#include "store/index.h"
#include "store/store.h"

/* The messages a COPY or MOVE works on, ascending, and their copies. */
struct copy_job {
	bool uid_cmd, move;
	const char *what;     /* "COPY", "UID MOVE", ... for replies and logs */
	char *target, *dir;   /* canonical name and Maildir directory */
	uint32_t *src_uids;
	char **src_paths;
	char **names;         /* the copies' names in dir/tmp/ */
	size_t count;
	uint32_t validity;
	uint32_t *dst_uids;
};

static void
copy_job_free(struct copy_job *job)
{
	for (size_t i = 0; i < job->count; i++) {
		free(job->src_paths[i]);
		if (job->names != NULL)
			free(job->names[i]);
	}
	free(job->src_paths);
	free(job->names);
	free(job->src_uids);
	free(job->dst_uids);
	free(job->target);
	free(job->dir);
}

/* The UIDs of the set as of the session's map, in sequence order. */
static void
copy_collect(struct imap_session *s, struct copy_job *job, struct imap_seqset *set)
{
	uint32_t count = s->sel.count;
	uint32_t star = job->uid_cmd ? (count > 0 ? s->sel.uids[count - 1] : 0) : count;
	job->src_uids = xcalloc(count + 1, sizeof(uint32_t));
	for (uint32_t seq = 1; seq <= count; seq++) {
		uint32_t n = job->uid_cmd ? s->sel.uids[seq - 1] : seq;
		if (imap_seqset_contains(set, n, star))
			job->src_uids[job->count++] = s->sel.uids[seq - 1];
	}
	job->src_paths = xcalloc(job->count + 1, sizeof(char *));
}

/* A plain copy where a hard link cannot be made (another file system). */
static int
copy_bytes(const char *from, const char *to, char **error_r)
{
	int in = open(from, O_RDONLY | O_CLOEXEC);
	int out = in < 0 ? -1 : open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	int r = in < 0 || out < 0 ? -1 : 0;
	char chunk[16384];
	ssize_t n = 0;
	while (r == 0 && (n = read(in, chunk, sizeof(chunk))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || write_all(out, chunk, (size_t)n) < 0)
			r = -1;
	}
	/* Durable before index_append puts a name in cur/ on it. */
	if (r == 0 && fsync(out) < 0)
		r = -1;
	if (r < 0)
		*error_r = xasprintf("copy %s: %s", from, strerror(errno));
	if (out >= 0 && close(out) < 0 && r == 0) {
		*error_r = xasprintf("close %s: %s", to, strerror(errno));
		r = -1;
	}
	if (in >= 0)
		close(in);
	if (r < 0 && out >= 0)
		unlink(to);
	return r;
}

/*
 * The copy's name: a new unique part dated like the source, then the
 * source's ",S=,W=" fields (",U=" is replaced by index_append), then the
 * info part: the system flags, and the keywords as the target folder's
 * letters (each folder has its own letter map). A keyword the target
 * cannot take (its map is full) is dropped, with a log line.
 */
static char *
copy_name(struct imap_session *s, const struct index_msg *m, const char *dir)
{
	const char *base = strrchr(m->path, '/');
	base = base != NULL ? base + 1 : m->path;
	size_t baselen = strcspn(base, ":");
	const char *fields = memchr(base, ',', baselen);
	if (fields == NULL)
		fields = base + baselen;
	char letters[INDEX_KEYWORDS_MAX + 1] = "";
	bool limit = false;
	char *error = NULL;
	if (m->keywords[0] != '\0' &&
	    index_keywords_letters(dir, m->keywords, letters, &limit, &error) < 0) {
		log_warn("imap %s: user=%s keywords not copied: %s", s->id, s->address,
			 limit ? "the target has no room for more" : error);
		free(error);
		letters[0] = '\0';
	}
	char *unique = store_unique_name(s->srv->store, m->internaldate);
	char *name = xasprintf("%s%.*s:2,%s%s", unique, (int)(base + baselen - fields),
			       fields, m->flags, letters);
	free(unique);
	return name;
}

/* Links each source into the target's tmp/; on failure removes them. */
static int
copy_link_all(struct imap_session *s, struct copy_job *job, char **error_r)
{
	job->names = xcalloc(job->count + 1, sizeof(char *));
	char *tmpdir = xasprintf("%s/tmp", job->dir);
	int r = mkdir_p(tmpdir, 0700);
	if (r < 0)
		*error_r = xasprintf("mkdir %s: %s", tmpdir, strerror(errno));
	for (size_t i = 0; r == 0 && i < job->count; i++) {
		struct index_msg m;
		int found = 0;
		r = index_msg_get(s->index, s->sel.name, s->sel.dir, job->src_uids[i], &m,
				  &found, error_r);
		if (r == 0 && !found) {
			*error_r = xasprintf("uid %u expunged meanwhile", job->src_uids[i]);
			r = -1;
		}
		if (r < 0)
			break;
		job->names[i] = copy_name(s, &m, job->dir);
		job->src_paths[i] = xstrdup(m.path);
		index_msg_clear(&m);
		char *to = xasprintf("%s/%s", tmpdir, job->names[i]);
		if (link(job->src_paths[i], to) < 0) {
			if (errno == EXDEV || errno == EPERM || errno == EMLINK)
				r = copy_bytes(job->src_paths[i], to, error_r);
			else {
				*error_r = xasprintf("link %s: %s", job->src_paths[i],
						     strerror(errno));
				r = -1;
			}
		}
		if (r < 0) {
			free(job->names[i]);
			job->names[i] = NULL;
		}
		free(to);
	}
	for (size_t i = 0; r < 0 && i < job->count && job->names[i] != NULL; i++) {
		char *p = xasprintf("%s/%s", tmpdir, job->names[i]);
		unlink(p);
		free(p);
	}
	free(tmpdir);
	return r;
}

/* A list of UIDs as a uid-set, runs of consecutive ones as "a:b". */
static void
copy_uidset(struct buf *out, const uint32_t *uids, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t j = i;
		while (j + 1 < n && uids[j + 1] == uids[j] + 1)
			j++;
		buf_appendf(out, "%s%u", i > 0 ? "," : "", uids[i]);
		if (j > i)
			buf_appendf(out, ":%u", uids[j]);
		i = j + 1;
	}
}

static void
copy_copyuid(struct buf *out, const struct copy_job *job)
{
	buf_appendf(out, "[COPYUID %u ", job->validity);
	copy_uidset(out, job->src_uids, job->count);
	buf_appends(out, " ");
	copy_uidset(out, job->dst_uids, job->count);
	buf_appends(out, "]");
}

/* The copies share their sources' cached texts (a cache: the first FETCH
   or SEARCH computes what is missing, so failures are ignored). */
static void
copy_cache(struct imap_session *s, const struct copy_job *job)
{
	struct index_cache_entry *e = xcalloc(job->count + 1, sizeof(*e));
	size_t n = 0;
	char *error = NULL;
	for (size_t i = 0; i < job->count && error == NULL; i++) {
		if (index_cache_get(s->index, s->sel.name, job->src_uids[i], &e[n], &error) == 0 &&
		    e[n].envelope != NULL)
			e[n++].uid = job->dst_uids[i];
	}
	if (error == NULL)
		index_cache_set(s->index, job->target, e, n, &error);
	free(error);
	for (size_t i = 0; i < n; i++)
		index_cache_entry_clear(&e[i]);
	free(e);
}

/* Makes the copies; 0, or -1 after answering NO. */
static int
copy_run(struct imap_session *s, struct copy_job *job)
{
	char *error = NULL;
	job->dst_uids = xcalloc(job->count + 1, sizeof(uint32_t));
	if (copy_link_all(s, job, &error) < 0 ||
	    index_append(s->index, job->target, job->dir, (const char *const *)job->names,
			 job->count, &job->validity, job->dst_uids, &error) < 0) {
		log_err("imap %s: user=%s %s failed: %s", s->id, s->address, job->what,
			error != NULL ? error : "?");
		free(error);
		conn_printf(s->conn, "%s NO [SERVERBUG] %s failed, nothing was copied\r\n",
			    s->tag, job->what);
		return -1;
	}
	copy_cache(s, job);
	log_info("imap %s: %s user=%s to=%s count=%zu", s->id, job->move ? "move" : "copy",
		 s->address, job->target, job->count);
	return 0;
}

/* MOVE's second half: the sources go, their EXPUNGEs are written. */
static int
copy_remove_sources(struct imap_session *s, struct copy_job *job, struct buf *out,
		    char **error_r)
{
	int r = 0;
	for (size_t i = 0; i < job->count; i++) {
		/* ENOENT: gone already, which the sync reports just the same. */
		if (unlink(job->src_paths[i]) < 0 && errno != ENOENT && r == 0) {
			*error_r = xasprintf("unlink %s: %s", job->src_paths[i], strerror(errno));
			r = -1;
		}
	}
	/* The unlinks become durable with cur/'s fsync before the OK. */
	char *error = NULL;
	if (imap_sync(s, true, out, r == 0 ? error_r : &error) < 0)
		r = -1;
	free(error);
	return r;
}

static int
copy_cmd(struct imap_session *s, const struct imap_arg *args, size_t argc, bool move)
{
	struct copy_job job = { .uid_cmd = imap_parser_uid(s->parser), .move = move };
	job.what = move ? (job.uid_cmd ? "UID MOVE" : "MOVE") : (job.uid_cmd ? "UID COPY" : "COPY");
	const char *name, *perr = NULL;
	size_t len;
	struct imap_seqset *set = NULL;
	if (argc != 2 || args[0].type != IMAP_ARG_ATOM ||
	    !imap_arg_get_astring(&args[1], &name, &len)) {
		imap_reply_bad(s, "Expected a sequence set and a mailbox");
		return -1;
	}
	if (imap_seqset_parse(args[0].u.str.data, args[0].u.str.len, 0, &set, &perr) < 0) {
		imap_reply_bad(s, perr);
		return -1;
	}
	if (move && s->sel.readonly) {
		imap_seqset_free(&set);
		conn_printf(s->conn, "%s NO [READ-ONLY] Mailbox is read-only\r\n", s->tag);
		return 0;
	}
	if (imap_target_open(s, name, &job.target, &job.dir) < 0) {
		imap_seqset_free(&set);
		return 0;
	}
	copy_collect(s, &job, set);
	imap_seqset_free(&set);
	struct buf out = BUF_INIT;
	size_t tagged_at = 0;
	/* Made durable before the OK: the target's new names, and MOVE's
	   unlinks in the selected mailbox. */
	const char *placed_in = NULL, *unlinked_in = NULL;
	char *error = NULL;
	if (job.count == 0) {
		/* No COPYUID: its uid-set (RFC 4315 §4) cannot be empty. */
		buf_appendf(&out, "%s OK %s completed, nothing to do\r\n", s->tag, job.what);
	} else if (copy_run(s, &job) == 0) {
		placed_in = job.dir;
		if (move) {
			/* RFC 6851 §4.3: COPYUID in an untagged OK, then the EXPUNGEs. */
			buf_appends(&out, "* OK ");
			copy_copyuid(&out, &job);
			buf_appends(&out, " Moved\r\n");
			int r = copy_remove_sources(s, &job, &out, &error);
			tagged_at = out.len;
			unlinked_in = s->sel.dir;
			if (r < 0) {
				log_err("imap %s: user=%s move: removing sources failed: %s",
					s->id, s->address, error != NULL ? error : "?");
				buf_appendf(&out, "%s NO [SERVERBUG] Copied, but some sources"
					    " remain\r\n", s->tag);
			} else {
				buf_appendf(&out, "%s OK %s completed\r\n", s->tag, job.what);
			}
		} else {
			/* A copy into the selected mailbox is announced at once. */
			if (strcmp(job.target, s->sel.name) == 0 &&
			    imap_sync(s, true, &out, &error) < 0)
				log_err("imap %s: user=%s sync after copy failed: %s", s->id,
					s->address, error != NULL ? error : "?");
			tagged_at = out.len;
			buf_appendf(&out, "%s OK ", s->tag);
			copy_copyuid(&out, &job);
			buf_appendf(&out, " %s completed\r\n", job.what);
		}
	}
	free(error);
	imap_reply_durable(s, placed_in, unlinked_in, &out, tagged_at);
	copy_job_free(&job);
	return 0;
}

int
imap_cmd_copy(struct imap_session *s, const struct imap_arg *args, size_t argc)
{
	return copy_cmd(s, args, argc, false);
}

int
imap_cmd_move(struct imap_session *s, const struct imap_arg *args, size_t argc)
{
	return copy_cmd(s, args, argc, true);
}
