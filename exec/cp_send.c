/* The sending side of a copy: walk the sources, read each file into chunks, emit the records. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include "exec/cp_send.h"
#include "exec/cp_fs.h"
#include "exec/cp_msg.h"
#include "platform/fdio.h"
#include "core/err.h"

/*
 * Theory of operation
 *
 * States: COUNT (with CP_F_TOTAL: a first walk adds up sizes, then TOTAL is
 * emitted) -> WALK (the next entry: ENTRY, and for a regular file ->) FILE
 * (reads until its size is read or end-of-file, then END, -> WALK) ->
 * FINISH (DONE, FIN) -> DONE.
 *
 * Events: a step (a zero timer, so that no callback runs inside
 * cp_send_start()), on_writable, a read completion, close.
 *
 * The pump runs steps while the stream is writable, no read is in flight and
 * a budget of CP_STEP_MAX steps lasts; an exhausted budget yields to the loop
 * through the zero timer, so a tree of a million empty files never holds the
 * loop for long, and an unwritable stream waits for on_writable: what is
 * queued never exceeds the stream's low-water mark plus one chunk. Walking
 * (lstat, readdir) blocks, one entry or one directory listing per step.
 *
 * Output is packed: records are written one after another into one chunk
 * from the session's pool, and file bytes are read straight into that chunk
 * behind a 4-byte DATA header, so a file's bytes are never copied in user
 * space and a thousand small files go out as a handful of frames. A run of
 * the chunk is handed to the stream (by reference) when the chunk is full,
 * before waiting, and before a read while the stream has nothing queued (to
 * keep the link busy). The XXH3-128 of each file is computed over the bytes
 * as they are read, and goes in its END.
 *
 * An entry that cannot be sent (no such file, permission denied, a FIFO, a
 * directory without -r, a read error midway: END then carries the error, so
 * the receiver drops the file) is reported through on_error and counted;
 * the walk goes on.
 *
 * Lifetime: the owner calls cp_send_close(); s frees itself at the end of
 * the event handler running then, or when its last request completes.
 */

#define CP_STEP_MAX  256	 /* steps per turn of the loop */
#define CP_READ_MAX  (1u << 20)	 /* bytes per read (a chunk is smaller anyway) */
#define CP_READ_MIN  (16u << 10) /* read into a fresh chunk rather than a smaller tail */
#define CP_OUT_KEEP  (2u << 10)	 /* a chunk with less room than this is done with */
#define CP_ENTRY_MAX (REC_HDR_LEN + REC_CONTROL_MAX)

/* ---- the walk ---- */

struct cp_level {
	char **names;
	size_t n, next;
	size_t len; /* the directory's path length in cp_walk.path */
};

struct cp_walk {
	char **srcs;
	int nsrc, isrc;
	bool recursive, src_stdin;
	bool in_src;  /* inside a source's tree */
	bool descend; /* the last entry returned is a directory to enter */
	char path[CP_PATH_MAX + 1];
	size_t len;
	size_t rel;		   /* where the path relative to the source starts */
	char top[CP_NAME_MAX + 1]; /* the current source's name */
	struct cp_level *lv;
	int depth, cap;
};

struct cp_walk_ent {
	struct cp_stat st;
	bool top;
	bool is_stdin;
	const char *path; /* on this side; also for errors */
	const char *name; /* in ENTRY: the source's name (top) or the relative path */
};

static void cp_walk_init(struct cp_walk *w, char **srcs, int nsrc, uint32_t flags, bool src_stdin)
{
	memset(w, 0, sizeof(*w));
	w->srcs = srcs;
	w->nsrc = nsrc;
	w->recursive = flags & CP_F_RECURSIVE;
	w->src_stdin = src_stdin;
}

static void cp_walk_fini(struct cp_walk *w)
{
	for (int i = 0; i < w->depth; i++)
		cp_fs_list_free(w->lv[i].names, w->lv[i].n);
	free(w->lv);
	w->lv = NULL;
	w->depth = 0;
}

/* The entry just returned is not to be entered (it could not be sent). */
static void cp_walk_skip(struct cp_walk *w)
{
	w->descend = false;
}

/* Starts the next source; returns 1 with its entry, or a negative errno for it. */
static int cp_walk_top(struct cp_walk *w, struct cp_walk_ent *e)
{
	const char *src = w->srcs[w->isrc++];
	size_t n = strlen(src);
	int ret;

	memset(e, 0, sizeof(*e));
	e->path = src;
	e->top = true;
	e->name = w->top;
	if (w->src_stdin) {
		e->is_stdin = true;
		e->st = (struct cp_stat){.type = CP_T_FILE, .mode = 0644, .size = CP_SIZE_UNKNOWN};
		e->st.mtime_ns = e->st.atime_ns = cp_fs_now_ns();
		strcpy(w->top, "-");
		return 1;
	}
	while (n > 1 && src[n - 1] == '/')
		n--;
	if (!n)
		return -ENOENT; /* "" names nothing, as for stat(2) */
	if (n > CP_PATH_MAX)
		return -ENAMETOOLONG;
	memcpy(w->path, src, n);
	w->path[n] = '\0';
	w->len = n;
	w->rel = w->path[n - 1] == '/' ? n : n + 1;
	ret = cp_top_name(src, w->top, sizeof(w->top));
	if (!ret)
		ret = cp_fs_stat(w->path, !w->recursive, &e->st);
	if (ret)
		return ret;
	w->in_src = true;
	w->descend = w->recursive && e->st.type == CP_T_DIR;
	return 1;
}

/* Lists the directory just returned and enters it; 0, or a negative errno for it. */
static int cp_walk_push(struct cp_walk *w, struct cp_walk_ent *e)
{
	struct cp_level *lv;
	int ret;

	if (w->depth == w->cap) {
		int ncap = w->cap ? w->cap * 2 : 8;
		struct cp_level *nl = realloc(w->lv, (size_t)ncap * sizeof(*nl));

		if (!nl)
			return -ENOMEM;
		w->lv = nl;
		w->cap = ncap;
	}
	lv = &w->lv[w->depth];
	memset(lv, 0, sizeof(*lv));
	ret = cp_fs_list(w->path, &lv->names, &lv->n);
	if (ret) {
		e->path = w->path;
		return ret;
	}
	lv->len = w->len;
	w->depth++;
	return 0;
}

/* Returns the next name of the innermost directory as an entry, or leaves the directory. */
static int cp_walk_child(struct cp_walk *w, struct cp_walk_ent *e)
{
	struct cp_level *lv = &w->lv[w->depth - 1];
	const char *name;
	size_t n;
	int ret;

	w->len = lv->len;
	w->path[w->len] = '\0';
	if (lv->next == lv->n) {
		cp_fs_list_free(lv->names, lv->n);
		w->depth--;
		return 0;
	}
	name = lv->names[lv->next++];
	n = strlen(name);
	memset(e, 0, sizeof(*e));
	e->path = w->path;
	if (w->len + 1 + n > CP_PATH_MAX) {
		snprintf(w->path + w->len, sizeof(w->path) - w->len, "/%s", name);
		return -ENAMETOOLONG;
	}
	if (w->path[w->len - 1] != '/')
		w->path[w->len++] = '/';
	memcpy(w->path + w->len, name, n + 1);
	w->len += n;
	e->name = w->path + w->rel;
	ret = cp_fs_stat(w->path, false, &e->st);
	if (ret)
		return ret;
	w->descend = e->st.type == CP_T_DIR;
	return 1;
}

/*
 * The next entry of the walk, depth first, names sorted. Returns 1 and the
 * entry, 0 at the end, or a negative errno for the entry at e->path (which
 * is skipped; the walk goes on).
 */
static int cp_walk_next(struct cp_walk *w, struct cp_walk_ent *e)
{
	int ret;

	for (;;) {
		if (w->descend) {
			w->descend = false;
			ret = cp_walk_push(w, e);
			if (ret)
				return ret;
		}
		if (w->in_src && w->depth) {
			ret = cp_walk_child(w, e);
			if (ret)
				return ret;
			continue;
		}
		w->in_src = false;
		if (w->isrc == w->nsrc)
			return 0;
		return cp_walk_top(w, e);
	}
}

/* ---- the sender ---- */

enum cp_send_state { CP_S_COUNT, CP_S_WALK, CP_S_FILE, CP_S_FINISH, CP_S_DONE };

struct cp_send {
	struct loop *loop;
	struct stream *st;
	struct chunk_pool *pool;
	const struct cp_send_ops *ops;
	void *arg;
	uint32_t flags;
	char **srcs;
	int nsrc;
	enum cp_send_state state;
	struct cp_walk walk, count;
	struct cp_total total;
	/* output: records packed into oc; [ostart, oused) not yet handed to the stream */
	struct chunk *oc;
	size_t ostart, oused;
	/* the file being read */
	int fd;
	bool fd_stdin;
	uint64_t left; /* bytes still to read; CP_SIZE_UNKNOWN: until end-of-file */
	uint64_t fbytes;
	char fpath[CP_PATH_MAX + 1];
	XXH3_state_t *hash;
	/* requests and lifetime */
	struct loop_req read_req, step_req;
	bool reading, stepping, closed;
	int pending, depth;
	struct cp_done stats;
	struct cp_entry ent;
};

static void cp_send_pump(struct cp_send *s);
static void cp_out_flush(struct cp_send *s);

/* Frees s once closed, idle and outside its own handlers (the last step of each handler). */
static void cp_send_free_maybe(struct cp_send *s)
{
	if (!s->closed || s->pending || s->depth)
		return;
	if (s->oc)
		chunk_put(s->oc);
	if (!s->fd_stdin)
		cp_fs_close(s->fd);
	cp_walk_fini(&s->walk);
	cp_walk_fini(&s->count);
	XXH3_freeState(s->hash);
	for (int i = 0; i < s->nsrc; i++)
		free(s->srcs[i]);
	free(s->srcs);
	free(s);
}

static void cp_send_report(struct cp_send *s, const char *path, int err, const char *text)
{
	s->stats.failed++;
	/* The agent's report is a RESULT written to the stream: the records before it go first. */
	cp_out_flush(s);
	s->ops->on_error(s->arg, path, err, text);
}

/* ---- output ---- */

/* Hands the written run of the chunk to the stream; drops the chunk when it is nearly full. */
static void cp_out_flush(struct cp_send *s)
{
	if (!s->oc)
		return;
	if (s->oused > s->ostart)
		stream_write(s->st, s->oc, s->oc->data + s->ostart, s->oused - s->ostart);
	s->ostart = s->oused;
	if (s->oc->size - s->oused < CP_OUT_KEEP) {
		chunk_put(s->oc);
		s->oc = NULL;
	}
}

/* Room for need bytes at the chunk's end (a fresh chunk if needed); NULL when out of memory. */
static uint8_t *cp_out_room(struct cp_send *s, size_t need)
{
	if (s->oc && s->oc->size - s->oused >= need)
		return s->oc->data + s->oused;
	cp_out_flush(s);
	if (s->oc)
		chunk_put(s->oc);
	s->oc = chunk_get(s->pool);
	s->ostart = s->oused = 0;
	return s->oc && s->oc->size >= need ? s->oc->data : NULL;
}

/* Appends a control record with a copy of its payload. */
static int cp_out_rec(struct cp_send *s, uint8_t type, const void *p, size_t n)
{
	uint8_t *o = cp_out_room(s, REC_HDR_LEN + n);

	if (!o)
		return -ENOMEM;
	cp_rec_hdr(o, type, (uint32_t)n);
	memcpy(o + REC_HDR_LEN, p, n);
	s->oused += REC_HDR_LEN + n;
	return 0;
}

/* Appends s->ent as an ENTRY record, encoded in place. */
static int cp_out_entry(struct cp_send *s)
{
	uint8_t *o = cp_out_room(s, CP_ENTRY_MAX);
	int n;

	if (!o)
		return -ENOMEM;
	n = cp_entry_encode(&s->ent, o + REC_HDR_LEN, REC_CONTROL_MAX);
	if (n < 0)
		return n;
	cp_rec_hdr(o, CP_REC_ENTRY, (uint32_t)n);
	s->oused += REC_HDR_LEN + (size_t)n;
	return 0;
}

/* ---- files ---- */

/* Ends the current file with END (err 0: read whole) and goes back to the walk. */
static void cp_send_end(struct cp_send *s, int err)
{
	struct cp_end end = {.code = err_to_wire(err), .bytes = s->fbytes};
	XXH128_canonical_t canon;
	uint8_t b[CP_END_LEN];

	XXH128_canonicalFromHash(&canon, XXH3_128bits_digest(s->hash));
	memcpy(end.hash, canon.digest, CP_HASH_LEN);
	cp_end_encode(&end, b);
	if (cp_out_rec(s, CP_REC_END, b, sizeof(b)) && !err)
		err = -ENOMEM;
	if (!s->fd_stdin)
		cp_fs_close(s->fd);
	s->fd = -1;
	s->fd_stdin = false;
	s->state = CP_S_WALK;
	if (err)
		cp_send_report(s, s->fpath, err, NULL);
}

/* A read completed: its bytes become a DATA record where they landed. */
static void cp_send_read_done(struct cp_send *s, int res)
{
	uint8_t *o = s->oc->data + s->oused;

	if (res == -EAGAIN || res == -EINTR)
		return; /* the pump reads again */
	if (res < 0) {
		cp_send_end(s, res);
		return;
	}
	if (res == 0) {
		cp_send_end(s, 0); /* end-of-file: a stream, or a file that shrank */
		return;
	}
	XXH3_128bits_update(s->hash, o + REC_HDR_LEN, (size_t)res);
	cp_rec_hdr(o, CP_REC_DATA, (uint32_t)res);
	s->oused += REC_HDR_LEN + (size_t)res;
	s->fbytes += (uint64_t)res;
	s->stats.bytes += (uint64_t)res;
	if (s->left != CP_SIZE_UNKNOWN)
		s->left -= (uint64_t)res;
}

static void cp_send_read_cb(struct loop_req *r, int res)
{
	struct cp_send *s = r->data;

	s->pending--;
	s->reading = false;
	s->depth++;
	if (!s->closed) {
		cp_send_read_done(s, res);
		cp_send_pump(s);
	}
	s->depth--;
	cp_send_free_maybe(s);
}

/* Reads the next piece of the current file into the chunk, or ends the file. */
static void cp_send_read(struct cp_send *s)
{
	size_t want = s->left < CP_READ_MAX ? (size_t)s->left : CP_READ_MAX, room;
	int ret;

	if (!s->left) {
		cp_send_end(s, 0);
		return;
	}
	if (!stream_queued(s->st))
		cp_out_flush(s); /* the link would idle during the read */
	if (!cp_out_room(s, REC_HDR_LEN + (want < CP_READ_MIN ? want : CP_READ_MIN))) {
		cp_send_end(s, -ENOMEM);
		return;
	}
	room = s->oc->size - s->oused - REC_HDR_LEN;
	if (want > room)
		want = room;
	s->reading = true;
	s->pending++;
	s->read_req.data = s;
	ret = loop_read(s->loop, &s->read_req, s->fd_stdin ? fdio_std(0) : s->fd,
			s->oc->data + s->oused + REC_HDR_LEN, want, cp_send_read_cb);
	if (ret) {
		s->reading = false;
		s->pending--;
		cp_send_end(s, ret);
	}
}

/* ---- entries ---- */

/* Why an entry of this kind is not sent, or NULL when it is. */
static const char *cp_send_refusal(const struct cp_send *s, const struct cp_walk_ent *e, int *err)
{
	if (!e->st.type) {
		*err = -EOPNOTSUPP;
		return "not a regular file, directory or symbolic link: skipped";
	}
	if (e->st.type == CP_T_DIR && !(s->flags & CP_F_RECURSIVE)) {
		*err = -EISDIR;
		return "-r not specified; omitting directory";
	}
	return NULL;
}

/* Fills s->ent for e; for a link reads its target. Returns 0 or a negative errno. */
static int cp_send_fill(struct cp_send *s, const struct cp_walk_ent *e)
{
	struct cp_entry *ent = &s->ent;
	size_t n = strlen(e->name);
	int ret;

	ent->type = e->st.type;
	ent->flags = e->top ? CP_E_TOP : 0;
	ent->mode = e->st.mode;
	ent->size = e->st.type == CP_T_FILE ? e->st.size : 0;
	ent->mtime_ns = e->st.mtime_ns;
	ent->atime_ns = e->st.atime_ns;
	ent->target[0] = '\0';
	if (n > CP_NAME_MAX)
		return -ENAMETOOLONG;
	memcpy(ent->path, e->name, n + 1);
	if (e->st.type != CP_T_LINK)
		return 0;
	ret = cp_fs_readlink(e->path, ent->target, sizeof(ent->target));
	return ret < 0 ? ret : 0;
}

/* Opens a regular file (or takes stdin) and makes it the current file. */
static int cp_send_open(struct cp_send *s, const struct cp_walk_ent *e)
{
	int ret = 0;

	if (e->is_stdin) {
		s->fd = -1; /* read through fdio_std(0) */
		s->fd_stdin = true;
	} else if (e->top && !(s->flags & CP_F_RECURSIVE)) {
		/* The walk followed a link named without -r (cp_walk_top): so does the open. */
		ret = cp_fs_open_read_named(e->path, &s->fd);
	} else {
		ret = cp_fs_open_read(e->path, &s->fd);
	}
	if (ret)
		return ret;
	snprintf(s->fpath, sizeof(s->fpath), "%s", e->is_stdin ? "-" : e->path);
	s->left = e->is_stdin ? CP_SIZE_UNKNOWN : e->st.size;
	s->fbytes = 0;
	XXH3_128bits_reset(s->hash);
	return 0;
}

/* Emits ENTRY for e and, for a regular file, starts reading it. */
static void cp_send_entry(struct cp_send *s, const struct cp_walk_ent *e)
{
	const char *why;
	int ret = 0;

	why = cp_send_refusal(s, e, &ret);
	if (!why)
		ret = cp_send_fill(s, e);
	if (!ret && e->st.type == CP_T_FILE)
		ret = cp_send_open(s, e);
	if (!ret) {
		ret = cp_out_entry(s);
		if (ret && e->st.type == CP_T_FILE && !s->fd_stdin)
			cp_fs_close(s->fd);
	}
	if (ret) {
		cp_walk_skip(&s->walk);
		if (s->fd_stdin)
			s->fd_stdin = false;
		s->fd = -1;
		cp_send_report(s, e->path, ret, why);
		return;
	}
	s->stats.entries++;
	if (e->st.type == CP_T_FILE)
		s->state = CP_S_FILE;
}

/* ---- steps ---- */

/* One entry of the first walk; at its end, TOTAL. */
static void cp_send_count(struct cp_send *s)
{
	struct cp_walk_ent e;
	uint8_t b[CP_TOTAL_LEN];
	int ret = cp_walk_next(&s->count, &e);

	if (ret > 0) {
		int err;

		if (cp_send_refusal(s, &e, &err))
			return;
		s->total.entries++;
		if (e.st.type == CP_T_FILE && !e.is_stdin)
			s->total.bytes += e.st.size;
		return;
	}
	if (ret < 0)
		return; /* reported by the second walk */
	cp_walk_fini(&s->count);
	cp_total_encode(&s->total, b);
	cp_out_rec(s, CP_REC_TOTAL, b, sizeof(b));
	if (s->ops->on_total)
		s->ops->on_total(s->arg, s->total.bytes, s->total.entries);
	s->state = CP_S_WALK;
}

static void cp_send_walk(struct cp_send *s)
{
	struct cp_walk_ent e;
	int ret = cp_walk_next(&s->walk, &e);

	if (ret > 0)
		cp_send_entry(s, &e);
	else if (ret < 0)
		cp_send_report(s, e.path, ret, NULL);
	else
		s->state = CP_S_FINISH;
}

/* DONE, FIN, and the owner is told. */
static void cp_send_finish(struct cp_send *s)
{
	uint8_t b[CP_DONE_LEN];

	cp_done_encode(&s->stats, b);
	cp_out_rec(s, CP_REC_DONE, b, sizeof(b));
	cp_out_flush(s);
	stream_shutdown(s->st);
	s->state = CP_S_DONE;
	s->ops->on_done(s->arg);
}

static void cp_send_step(struct cp_send *s)
{
	switch (s->state) {
	case CP_S_COUNT:
		cp_send_count(s);
		break;
	case CP_S_WALK:
		cp_send_walk(s);
		break;
	case CP_S_FILE:
		cp_send_read(s);
		break;
	case CP_S_FINISH:
		cp_send_finish(s);
		break;
	case CP_S_DONE:
		break;
	}
}

static void cp_send_step_cb(struct loop_req *r, int res)
{
	struct cp_send *s = r->data;

	s->pending--;
	s->stepping = false;
	s->depth++;
	if (!s->closed)
		cp_send_pump(s);
	s->depth--;
	cp_send_free_maybe(s);
}

/* Lets the loop run other work, then goes on. */
static void cp_send_yield(struct cp_send *s)
{
	cp_out_flush(s);
	if (s->stepping)
		return;
	s->stepping = true;
	s->pending++;
	s->step_req.data = s;
	if (loop_timer(s->loop, &s->step_req, 0, cp_send_step_cb)) {
		s->stepping = false;
		s->pending--;
	}
}

static void cp_send_pump(struct cp_send *s)
{
	for (int budget = CP_STEP_MAX; !s->closed && !s->reading && s->state != CP_S_DONE;
	     budget--) {
		if (!budget) {
			cp_send_yield(s);
			return;
		}
		if (!stream_writable(s->st)) {
			cp_out_flush(s);
			return; /* on_writable resumes */
		}
		cp_send_step(s);
	}
}

/* ---- public ---- */

int cp_send_start(struct cp_send **out, const struct cp_send_opts *o, const struct cp_send_ops *ops,
		  void *arg)
{
	struct cp_send *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->loop = o->loop;
	s->st = o->st;
	s->pool = session_pool(stream_session(o->st));
	s->ops = ops;
	s->arg = arg;
	s->flags = o->flags;
	s->fd = -1;
	s->hash = XXH3_createState();
	s->srcs = calloc((size_t)o->nsrc, sizeof(char *));
	s->nsrc = o->nsrc;
	for (int i = 0; s->srcs && i < o->nsrc; i++)
		if (!(s->srcs[i] = strdup(o->srcs[i])))
			s->closed = true;
	if (!s->hash || !s->srcs || s->closed) {
		s->closed = true;
		cp_send_free_maybe(s);
		return -ENOMEM;
	}
	cp_walk_init(&s->walk, s->srcs, s->nsrc, s->flags, o->src_stdin);
	cp_walk_init(&s->count, s->srcs, s->nsrc, s->flags, o->src_stdin);
	s->state = s->flags & CP_F_TOTAL ? CP_S_COUNT : CP_S_WALK;
	cp_send_yield(s);
	*out = s;
	return 0;
}

void cp_send_writable(struct cp_send *s)
{
	s->depth++;
	if (!s->stepping)
		cp_send_pump(s);
	s->depth--;
	cp_send_free_maybe(s);
}

uint64_t cp_send_bytes(const struct cp_send *s)
{
	return s->stats.bytes;
}

void cp_send_close(struct cp_send *s)
{
	if (s->closed)
		return;
	s->closed = true;
	if (s->reading)
		loop_cancel(s->loop, &s->read_req);
	if (s->stepping)
		loop_cancel(s->loop, &s->step_req);
	cp_send_free_maybe(s);
}
