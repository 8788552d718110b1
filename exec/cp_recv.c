/* The receiving side of a copy: check each entry, write files to temporaries, verify, commit. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include "exec/cp_recv.h"
#include "exec/cp_fs.h"
#include "core/list.h"
#include "core/rec.h"
#include "platform/sys.h"

/*
 * Theory of operation
 *
 * Two halves. Arrival parses the sender's records as they come; execution
 * applies them to the file system in the same order, one entry at a time.
 *
 * Arrival: ENTRY is decoded and checked (cp_entry_decode: relative paths
 * only, no "..", no empty component, no NUL; a source's root is one name,
 * and with expected names (GET) it must be one of them), mapped under the
 * target and queued as a job. DATA pieces of the current file are hashed
 * (XXH3-128) and queued by reference in its job; END compares size and hash
 * with the sender's. DONE ends the input. Directories are kept on a stack
 * while entries arrive beneath them; when the walk leaves one, a job that
 * sets its mode (and times, with -p) is queued behind everything inside it.
 *
 * Execution, at the head of the queue:
 *   DIR   mkdir (0700 until its own mode is set), or an existing directory.
 *   LINK  a symbolic link under a temporary name, renamed into place.
 *   ATTR  a directory's mode and times, once everything inside it is done.
 *   FILE  a temporary file in the target's directory (O_TMPFILE, else
 *         ".<name>.vmbusify-XXXXXX"), written piece by piece with writev
 *         straight from the receive chunks, one write in flight; after END
 *         and the last write: mode, times, then linked or renamed over the
 *         name. A file that fails (a write error, a checksum or size
 *         mismatch, the sender's own read error, the input ending) loses its
 *         temporary: the name is never seen holding a partial file.
 *
 * Every path is opened from the base directory one component at a time
 * with O_NOFOLLOW (exec/cp_fs.c): an entry can never reach outside the
 * target, not through "..", nor through a link that an earlier entry made.
 * A directory that fails takes its subtree with it, silently: one line per
 * failure, not one per file beneath it.
 *
 * Credit: a byte is returned to the sender once it is written or dropped;
 * a queued entry holds its record's bytes until executed, so a slow disk
 * (or a flood of entries) is bounded by the stream's window. Counted over
 * the whole stream: returned = fed - held, never more.
 *
 * Lifetime: the owner calls cp_recv_close(); r frees itself at the end of
 * the handler running then, or when its write in flight completes.
 */

#define CP_IOV_MAX 32

enum { CP_J_ATTR = 4 }; /* the other job kinds are CP_T_FILE, CP_T_DIR, CP_T_LINK */

struct cp_dirinfo {
	int refs;
	bool created; /* by this copy: its mode is set even without -p */
	bool failed;
};

struct cp_piece {
	struct list node;
	struct chunk *c;
	const uint8_t *p;
	size_t len;
};

struct cp_job {
	struct list node;
	uint8_t kind;
	bool failed; /* dropped (reported already, or silently); its data is discarded */
	bool ended;  /* FILE: END came */
	bool opened; /* FILE: its temporary (or out_fd) is open */
	uint32_t mode;
	struct cp_times times;
	size_t charge; /* credit held for the ENTRY record */
	uint64_t recvd;
	struct list pieces;
	size_t queued;
	struct cp_tmp tmp;
	int tdir;		/* FILE: the directory of its temporary (borrowed) */
	struct cp_dirinfo *dir; /* DIR, ATTR */
	char *target;		/* LINK */
	char rel[];		/* under the base directory; "" is the base itself */
};

struct cp_dirstk {
	char *rel;
	uint32_t mode;
	struct cp_times times;
	struct cp_dirinfo *info;
};

struct cp_recv {
	struct loop *loop;
	struct stream *st;
	const struct cp_recv_ops *ops;
	void *arg;
	uint32_t flags, mode_mask;
	int base;	 /* the base directory, -1 when writing to out_fd */
	pl_fd out_fd;	 /* >= 0: one file to this descriptor */
	bool into;	 /* the target is a directory the sources go into */
	char *base_name; /* else: the target's own name under base */
	char *disp;	 /* the base as the user named it, for messages */
	char **expect;
	int nexpect, iexpect;
	/* arrival */
	struct rec_rd rd;
	struct cp_entry ent;
	struct cp_job *in; /* the file receiving DATA */
	XXH3_state_t *hash;
	char top[CP_PATH_MAX + 1]; /* the current source's root, relative to base */
	bool have_top, drop;	   /* drop: the current source is refused whole */
	int ntops;
	struct cp_dirstk *stk;
	int nstk, capstk;
	bool sender_done, finished;
	struct cp_done sender;
	/* execution */
	struct list jobs;
	struct loop_req wreq;
	struct vb_iov iov[CP_IOV_MAX];
	bool writing;
	int pdir;	/* the parent directory of the last entry, cached */
	char *pdir_rel; /* its path under base */
	char *skip;	/* a failed directory: everything beneath is dropped */
	/* credit */
	uint64_t fed, held, returned;
	struct cp_done stats;
	bool closed;
	int pending, depth;
};

static void cp_recv_run(struct cp_recv *r);

/* ---- small helpers ---- */

/* True when rel lies beneath dir (everything lies beneath the base, ""). */
static bool cp_under(const char *rel, const char *dir)
{
	size_t n = strlen(dir);

	return !n || (!strncmp(rel, dir, n) && rel[n] == '/');
}

static void cp_dirinfo_put(struct cp_dirinfo *d)
{
	if (d && !--d->refs)
		free(d);
}

/* Reports an entry that failed here, by its path as the user sees it. */
static void cp_recv_report(struct cp_recv *r, const char *rel, int err, const char *text)
{
	char path[CP_PATH_MAX + 512];

	if (!text && err == -ELOOP)
		text = "a directory on the way is a symbolic link: not followed";
	if (!*rel)
		snprintf(path, sizeof(path), "%s", r->disp);
	else if (!*r->disp)
		snprintf(path, sizeof(path), "%s", rel);
	else
		snprintf(path, sizeof(path), "%s%s%s", r->disp,
			 r->disp[strlen(r->disp) - 1] == '/' ? "" : "/", rel);
	/* The names are the peer's: none may move the user's terminal (ESC, CR, BEL...). */
	for (char *s = path; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
	r->stats.failed++;
	if (!r->closed)
		r->ops->on_result(r->arg, path, err, text);
}

/* Returns the credit of everything written, dropped or executed. */
static void cp_recv_credit(struct cp_recv *r)
{
	uint64_t want = r->fed - r->held;

	if (r->st && want > r->returned) {
		stream_consumed(r->st, (size_t)(want - r->returned));
		r->returned = want;
	}
}

/* Drops n written (or discarded) bytes from the head of j's pieces. */
static void cp_job_advance(struct cp_recv *r, struct cp_job *j, size_t n)
{
	while (n && !list_empty(&j->pieces)) {
		struct cp_piece *pc = list_first(&j->pieces, struct cp_piece, node);
		size_t take = n < pc->len ? n : pc->len;

		pc->p += take;
		pc->len -= take;
		j->queued -= take;
		r->held -= take;
		n -= take;
		if (!pc->len) {
			list_del(&pc->node);
			chunk_put(pc->c);
			free(pc);
		}
	}
}

static void cp_job_free(struct cp_recv *r, struct cp_job *j)
{
	cp_job_advance(r, j, j->queued);
	r->held -= j->charge;
	if (j->opened && r->out_fd < 0)
		cp_fs_tmp_discard(j->tdir, &j->tmp);
	cp_dirinfo_put(j->dir);
	free(j->target);
	free(j);
}

/* Frees r once closed, idle and outside its own handlers (the last step of each handler). */
static void cp_recv_free_maybe(struct cp_recv *r)
{
	if (!r->closed || r->pending || r->depth)
		return;
	while (!list_empty(&r->jobs)) {
		struct cp_job *j = list_first(&r->jobs, struct cp_job, node);

		list_del(&j->node);
		cp_job_free(r, j);
	}
	for (int i = 0; i < r->nstk; i++) {
		free(r->stk[i].rel);
		cp_dirinfo_put(r->stk[i].info);
	}
	free(r->stk);
	for (int i = 0; i < r->nexpect; i++)
		free(r->expect[i]);
	free(r->expect);
	if (r->pdir >= 0)
		cp_fs_close(r->pdir);
	if (r->base >= 0)
		cp_fs_close(r->base);
	XXH3_freeState(r->hash);
	free(r->pdir_rel);
	free(r->skip);
	free(r->base_name);
	free(r->disp);
	free(r);
}

/* ---- paths on this side ---- */

/*
 * Finds the directory holding rel (not "") and the last component's name,
 * opening each directory on the way without following links. *dir is
 * borrowed (the cache or base). Returns 0 or a negative errno.
 */
static int cp_recv_parent(struct cp_recv *r, const char *rel, int *dir, const char **name)
{
	const char *slash = strrchr(rel, '/');
	char buf[CP_PATH_MAX + 1];
	size_t plen;
	int fd, ret = 0;

	*name = slash ? slash + 1 : rel;
	*dir = r->base;
	if (!slash)
		return 0;
	plen = (size_t)(slash - rel);
	if (r->pdir >= 0 && strlen(r->pdir_rel) == plen && !memcmp(r->pdir_rel, rel, plen)) {
		*dir = r->pdir;
		return 0;
	}
	if (r->pdir >= 0)
		cp_fs_close(r->pdir);
	r->pdir = -1;
	memcpy(buf, rel, plen);
	buf[plen] = '\0';
	fd = r->base;
	for (char *save = NULL, *c = strtok_r(buf, "/", &save); c && !ret;
	     c = strtok_r(NULL, "/", &save)) {
		int next;

		ret = cp_fs_open_sub(fd, c, &next);
		if (fd != r->base)
			cp_fs_close(fd);
		fd = ret ? r->base : next;
	}
	if (ret)
		return ret;
	free(r->pdir_rel);
	r->pdir_rel = strndup(rel, plen);
	if (!r->pdir_rel) {
		cp_fs_close(fd);
		return -ENOMEM;
	}
	r->pdir = fd;
	*dir = fd;
	return 0;
}

/* ---- execution ---- */

static void cp_recv_do_dir(struct cp_recv *r, struct cp_job *j)
{
	const char *name;
	int dir, ret = 0;

	if (*j->rel) {
		ret = cp_recv_parent(r, j->rel, &dir, &name);
		if (!ret)
			ret = cp_fs_mkdir(dir, name, &j->dir->created);
	}
	if (ret) {
		cp_recv_report(r, j->rel, ret, NULL);
		j->failed = true;
	} else {
		r->stats.entries++;
	}
}

static void cp_recv_do_link(struct cp_recv *r, struct cp_job *j)
{
	bool keep = r->flags & CP_F_PRESERVE;
	const char *name;
	int dir, ret;

	ret = cp_recv_parent(r, j->rel, &dir, &name);
	if (!ret)
		ret = cp_fs_symlink(dir, name, j->target, keep ? &j->times : NULL);
	if (ret)
		cp_recv_report(r, j->rel, ret, NULL);
	else
		r->stats.entries++;
}

/* A directory's own mode (when this copy made it, or with -p) and times (with -p). */
static void cp_recv_do_attr(struct cp_recv *r, struct cp_job *j)
{
	bool keep = r->flags & CP_F_PRESERVE;
	const char *name;
	int dir, fd = r->base, ret = 0;

	if (j->dir->failed || (!j->dir->created && !keep))
		return;
	if (*j->rel) {
		ret = cp_recv_parent(r, j->rel, &dir, &name);
		if (!ret)
			ret = cp_fs_open_sub(dir, name, &fd);
	}
	if (!ret)
		ret = cp_fs_set(fd, j->mode, keep ? &j->times : NULL);
	if (fd != r->base)
		cp_fs_close(fd);
	if (ret)
		cp_recv_report(r, j->rel, ret, NULL);
}

/* Opens the file's temporary (or takes out_fd); a failure drops the file. */
static void cp_recv_open(struct cp_recv *r, struct cp_job *j)
{
	const char *name;
	int dir, ret;

	if (r->out_fd >= 0) {
		j->opened = true;
		return;
	}
	ret = cp_recv_parent(r, j->rel, &dir, &name);
	if (!ret)
		ret = cp_fs_tmp_open(dir, name, &j->tmp);
	if (ret) {
		cp_recv_report(r, j->rel, ret, NULL);
		j->failed = true;
		return;
	}
	j->tdir = dir;
	j->opened = true;
}

/* Mode, times, then the name: the file appears complete or not at all. */
static void cp_recv_commit(struct cp_recv *r, struct cp_job *j)
{
	const char *slash = strrchr(j->rel, '/');
	const char *name = slash ? slash + 1 : j->rel;
	int ret;

	j->opened = false;
	if (r->out_fd >= 0) {
		r->stats.entries++;
		return;
	}
	ret = cp_fs_set(j->tmp.fd, j->mode, r->flags & CP_F_PRESERVE ? &j->times : NULL);
	if (!ret)
		ret = cp_fs_tmp_commit(j->tdir, name, &j->tmp);
	if (ret) {
		cp_fs_tmp_discard(j->tdir, &j->tmp);
		cp_recv_report(r, j->rel, ret, NULL);
		return;
	}
	r->stats.entries++;
}

static void cp_recv_write_cb(struct loop_req *req, int res)
{
	struct cp_recv *r = req->data;

	r->pending--;
	r->writing = false;
	r->depth++;
	if (!r->closed) {
		struct cp_job *j = list_first(&r->jobs, struct cp_job, node);

		if (res > 0) {
			cp_job_advance(r, j, (size_t)res);
		} else if (res != -EAGAIN && res != -EINTR && !j->failed) {
			cp_recv_report(r, j->rel, res ? res : -EIO, NULL);
			j->failed = true;
		}
		cp_recv_run(r);
	}
	r->depth--;
	cp_recv_free_maybe(r);
}

/* Writes the queued pieces of the head file, as many as one writev takes. */
static void cp_recv_write(struct cp_recv *r, struct cp_job *j)
{
	struct list *pos, *tmp;
	int n = 0, ret;

	list_for_each_safe (pos, tmp, &j->pieces) {
		struct cp_piece *pc = list_entry(pos, struct cp_piece, node);

		if (n == CP_IOV_MAX)
			break;
		r->iov[n].base = (void *)pc->p;
		r->iov[n++].len = pc->len;
	}
	r->writing = true;
	r->pending++;
	r->wreq.data = r;
	ret = loop_writev(r->loop, &r->wreq, r->out_fd >= 0 ? r->out_fd : j->tmp.fd, r->iov, n,
			  cp_recv_write_cb);
	if (ret) {
		r->writing = false;
		r->pending--;
		cp_recv_report(r, j->rel, ret, NULL);
		j->failed = true;
	}
}

/* Moves the head file on; returns true once it is settled (committed or dropped). */
static bool cp_recv_file(struct cp_recv *r, struct cp_job *j)
{
	if (!j->failed && !j->opened)
		cp_recv_open(r, j);
	if (r->writing)
		return false;
	if (j->failed) {
		if (j->opened && r->out_fd < 0)
			cp_fs_tmp_discard(j->tdir, &j->tmp);
		j->opened = false;
		cp_job_advance(r, j, j->queued);
		return j->ended;
	}
	if (j->queued) {
		cp_recv_write(r, j);
		return false;
	}
	if (!j->ended)
		return false;
	cp_recv_commit(r, j);
	return true;
}

/* Runs the head job; returns true once it is settled. */
static bool cp_recv_job(struct cp_recv *r, struct cp_job *j)
{
	if (r->skip && (!strcmp(j->rel, r->skip) || cp_under(j->rel, r->skip))) {
		j->failed = true; /* beneath a directory that failed: silently */
		if (j->dir)
			j->dir->failed = true;
	} else if (r->skip) {
		free(r->skip);
		r->skip = NULL;
	}
	switch (j->kind) {
	case CP_T_DIR:
		if (!j->failed)
			cp_recv_do_dir(r, j);
		if (j->failed && j->dir)
			j->dir->failed = true;
		if (j->failed && *j->rel && !r->skip) {
			free(r->skip);
			r->skip = strdup(j->rel);
		}
		return true;
	case CP_T_LINK:
		if (!j->failed)
			cp_recv_do_link(r, j);
		return true;
	case CP_J_ATTR:
		if (!j->failed)
			cp_recv_do_attr(r, j);
		return true;
	default:
		return cp_recv_file(r, j);
	}
}

static void cp_recv_run(struct cp_recv *r)
{
	while (!r->closed && !list_empty(&r->jobs)) {
		struct cp_job *j = list_first(&r->jobs, struct cp_job, node);

		if (!cp_recv_job(r, j))
			break;
		list_del(&j->node);
		cp_job_free(r, j);
	}
	cp_recv_credit(r);
	if (!r->closed && r->sender_done && list_empty(&r->jobs) && !r->finished) {
		r->finished = true;
		r->ops->on_done(r->arg, &r->sender);
	}
}

/* ---- arrival ---- */

static struct cp_job *cp_job_new(const char *rel, uint8_t kind)
{
	size_t n = strlen(rel);
	struct cp_job *j = calloc(1, sizeof(*j) + n + 1);

	if (!j)
		return NULL;
	j->kind = kind;
	j->tmp.fd = -1;
	list_init(&j->pieces);
	memcpy(j->rel, rel, n + 1);
	return j;
}

/* Queues the job that sets the mode and times of the innermost directory left. */
static int cp_recv_pop(struct cp_recv *r)
{
	struct cp_dirstk *d = &r->stk[--r->nstk];
	struct cp_job *j = cp_job_new(d->rel, CP_J_ATTR);

	free(d->rel);
	if (!j) {
		cp_dirinfo_put(d->info);
		return -ENOMEM;
	}
	j->mode = d->mode;
	j->times = d->times;
	j->dir = d->info; /* the stack's reference moves to the job */
	list_add_tail(&r->jobs, &j->node);
	return 0;
}

/* Leaves every directory rel is not beneath ("" / NULL: all of them). */
static int cp_recv_leave(struct cp_recv *r, const char *rel)
{
	int ret = 0;

	while (!ret && r->nstk && (!rel || !cp_under(rel, r->stk[r->nstk - 1].rel)))
		ret = cp_recv_pop(r);
	return ret;
}

static int cp_recv_push(struct cp_recv *r, struct cp_job *j)
{
	struct cp_dirstk *d;

	if (r->nstk == r->capstk) {
		int ncap = r->capstk ? r->capstk * 2 : 16;
		struct cp_dirstk *n = realloc(r->stk, (size_t)ncap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		r->stk = n;
		r->capstk = ncap;
	}
	j->dir = calloc(1, sizeof(*j->dir));
	d = &r->stk[r->nstk];
	d->rel = strdup(j->rel);
	if (!j->dir || !d->rel) {
		free(d->rel);
		return -ENOMEM;
	}
	j->dir->refs = 2;
	d->mode = j->mode;
	d->times = j->times;
	d->info = j->dir;
	r->nstk++;
	return 0;
}

/*
 * A source's root: checks its name and maps it under base. Returns 0, 1 when
 * the source is refused whole (reported), or -EPROTO.
 */
static int cp_recv_top(struct cp_recv *r, const struct cp_entry *e)
{
	int i = r->iexpect;

	if (r->nexpect) {
		while (i < r->nexpect && strcmp(r->expect[i], e->path))
			i++;
		if (i == r->nexpect)
			return -EPROTO; /* a name that was not asked for */
		r->iexpect = i + 1;
	}
	r->have_top = true;
	r->ntops++;
	if (r->out_fd >= 0 && (r->ntops > 1 || e->type != CP_T_FILE)) {
		cp_recv_report(r, "", -EINVAL, "standard output takes a single regular file");
		return 1;
	}
	if (r->out_fd >= 0)
		r->top[0] = '\0';
	else if (!r->into && r->ntops > 1) {
		cp_recv_report(r, "", -ENOTDIR, NULL);
		return 1;
	} else if (!r->into)
		snprintf(r->top, sizeof(r->top), "%s", r->base_name);
	else
		snprintf(r->top, sizeof(r->top), "%s", strcmp(e->path, ".") ? e->path : "");
	return 0;
}

/* The job's path under base: the source's root, then e's path. */
static int cp_recv_rel(struct cp_recv *r, const struct cp_entry *e, char *rel, size_t cap)
{
	int n;

	if (e->flags & CP_E_TOP)
		n = snprintf(rel, cap, "%s", r->top);
	else if (!*r->top)
		n = snprintf(rel, cap, "%s", e->path);
	else
		n = snprintf(rel, cap, "%s/%s", r->top, e->path);
	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

/* Builds and queues the job for e. */
static int cp_recv_enqueue(struct cp_recv *r, const struct cp_entry *e, const char *rel,
			   size_t charge, bool failed)
{
	struct cp_job *j = cp_job_new(rel, e->type);

	if (!j)
		return -ENOMEM;
	j->failed = failed;
	j->mode = e->mode & r->mode_mask;
	j->times = (struct cp_times){.atime_ns = e->atime_ns, .mtime_ns = e->mtime_ns};
	if (e->type == CP_T_LINK && !(j->target = strdup(e->target))) {
		free(j);
		return -ENOMEM;
	}
	if (e->type == CP_T_DIR && !failed && cp_recv_push(r, j)) {
		cp_dirinfo_put(j->dir);
		free(j);
		return -ENOMEM;
	}
	j->charge = charge;
	r->held += charge;
	list_add_tail(&r->jobs, &j->node);
	if (e->type == CP_T_FILE) {
		r->in = j;
		XXH3_128bits_reset(r->hash);
	}
	return 0;
}

static int cp_recv_entry(struct cp_recv *r, const uint8_t *p, size_t n)
{
	struct cp_entry *e = &r->ent;
	char rel[CP_PATH_MAX + 1];
	bool failed = false;
	int ret;

	if (r->in || cp_entry_decode(p, n, e))
		return -EPROTO;
	if (e->type == CP_T_DIR && !(r->flags & CP_F_RECURSIVE))
		return -EPROTO;
	if (e->flags & CP_E_TOP) {
		ret = cp_recv_leave(r, NULL);
		if (!ret)
			ret = cp_recv_top(r, e);
		if (ret < 0)
			return ret;
		r->drop = ret == 1;
	} else if (!r->have_top) {
		return -EPROTO;
	}
	if (r->drop) {
		/* Refused with its source: a file still needs a job to take its data. */
		return e->type == CP_T_FILE ? cp_recv_enqueue(r, e, "", 0, true) : 0;
	}
	ret = cp_recv_rel(r, e, rel, sizeof(rel));
	if (ret) {
		cp_recv_report(r, e->path, ret, NULL);
		failed = true;
		rel[0] = '\0';
	}
	ret = cp_recv_leave(r, rel);
	if (!ret)
		ret = cp_recv_enqueue(r, e, rel, REC_HDR_LEN + n, failed);
	return ret;
}

static int cp_recv_data(struct cp_recv *r, struct chunk *c, const uint8_t *p, size_t n)
{
	struct cp_job *j = r->in;
	struct cp_piece *pc;

	if (!j)
		return -EPROTO;
	XXH3_128bits_update(r->hash, p, n);
	j->recvd += n;
	r->stats.bytes += n;
	if (j->failed || !n)
		return 0;
	pc = malloc(sizeof(*pc));
	if (!pc)
		return -ENOMEM;
	chunk_ref(c);
	pc->c = c;
	pc->p = p;
	pc->len = n;
	list_add_tail(&j->pieces, &pc->node);
	j->queued += n;
	r->held += n;
	return 0;
}

static int cp_recv_end(struct cp_recv *r, const uint8_t *p, size_t n)
{
	struct cp_job *j = r->in;
	XXH128_canonical_t canon;
	struct cp_end end;

	if (!j || cp_end_decode(p, n, &end))
		return -EPROTO;
	r->in = NULL;
	j->ended = true;
	if (j->failed)
		return 0;
	if (end.code) {
		j->failed = true; /* the sender could not read it, and said so */
		return 0;
	}
	XXH128_canonicalFromHash(&canon, XXH3_128bits_digest(r->hash));
	if (end.bytes != j->recvd || memcmp(canon.digest, end.hash, CP_HASH_LEN)) {
		cp_recv_report(r, j->rel, -EIO, "checksum mismatch: the copy was discarded");
		j->failed = true;
	}
	return 0;
}

static int cp_recv_done(struct cp_recv *r, const uint8_t *p, size_t n)
{
	if (r->in || cp_done_decode(p, n, &r->sender))
		return -EPROTO;
	r->sender_done = true;
	return cp_recv_leave(r, NULL);
}

static int cp_recv_record(void *arg, uint8_t type, struct chunk *c, const uint8_t *p, size_t n,
			  bool first, bool last)
{
	struct cp_recv *r = arg;

	if (r->sender_done)
		return -EPROTO; /* nothing may follow DONE */
	switch (type) {
	case CP_REC_DATA:
		return cp_recv_data(r, c, p, n);
	case CP_REC_ENTRY:
		return cp_recv_entry(r, p, n);
	case CP_REC_END:
		return cp_recv_end(r, p, n);
	case CP_REC_DONE:
		return cp_recv_done(r, p, n);
	default:
		return r->ops->on_record && type >= REC_CONTROL_MIN
			   ? r->ops->on_record(r->arg, type, p, n)
			   : -EPROTO;
	}
}

/* ---- setup ---- */

/* Splits the target into the directory to open and the copy's own name. */
static int cp_recv_split(struct cp_recv *r, const char *dst, char *dir, size_t cap)
{
	const char *slash = strrchr(dst, '/');
	const char *name = slash ? slash + 1 : dst;

	if (!*name || !strcmp(name, ".") || !strcmp(name, ".."))
		return -EISDIR;
	if (!slash)
		snprintf(dir, cap, ".");
	else if (slash == dst)
		snprintf(dir, cap, "/");
	else
		snprintf(dir, cap, "%.*s", (int)(slash - dst), dst);
	r->base_name = strdup(name);
	r->disp = strdup(slash ? dir : "");
	return r->base_name && r->disp ? 0 : -ENOMEM;
}

/* Opens the base directory for dst (trailing slashes already dropped). */
static int cp_recv_target(struct cp_recv *r, const char *dst)
{
	char dir[CP_PATH_MAX + 1];
	bool is_dir = false;
	int ret = cp_fs_is_dir(dst, &is_dir);

	if (ret && ret != -ENOENT)
		return ret;
	if (!ret && is_dir && !(r->flags & CP_F_TARGET)) {
		r->into = true;
		r->disp = strdup(dst);
		return r->disp ? cp_fs_open_dir(dst, &r->base) : -ENOMEM;
	}
	if (r->flags & CP_F_INTO)
		return ret ? ret : -ENOTDIR;
	ret = cp_recv_split(r, dst, dir, sizeof(dir));
	return ret ? ret : cp_fs_open_dir(dir, &r->base);
}

static int cp_recv_expect(struct cp_recv *r, const struct cp_recv_opts *o)
{
	if (!o->nexpect)
		return 0;
	r->expect = calloc((size_t)o->nexpect, sizeof(char *));
	if (!r->expect)
		return -ENOMEM;
	r->nexpect = o->nexpect;
	for (int i = 0; i < o->nexpect; i++)
		if (!(r->expect[i] = strdup(o->expect[i])))
			return -ENOMEM;
	return 0;
}

int cp_recv_new(struct cp_recv **out, const struct cp_recv_opts *o, const struct cp_recv_ops *ops,
		void *arg, char *why, size_t whylen)
{
	struct cp_recv *r = calloc(1, sizeof(*r));
	char dst[CP_PATH_MAX + 1];
	size_t n;
	int ret = -ENOMEM;

	snprintf(why, whylen, "%s: out of memory", o->dst ? o->dst : "-");
	if (!r)
		return ret;
	r->loop = o->loop;
	r->ops = ops;
	r->arg = arg;
	r->flags = o->flags;
	r->mode_mask = o->mode_mask;
	r->base = r->pdir = r->out_fd = -1;
	r->closed = true; /* until set up: a failure frees it at once */
	list_init(&r->jobs);
	rec_rd_init(&r->rd);
	r->hash = XXH3_createState();
	if (!r->hash || cp_recv_expect(r, o))
		goto fail;
	if (!o->dst) {
		r->out_fd = o->out_fd;
		r->disp = strdup("-");
		ret = r->disp ? 0 : -ENOMEM;
	} else {
		n = strlen(o->dst);
		while (n > 1 && o->dst[n - 1] == '/')
			n--;
		ret = n > CP_PATH_MAX ? -ENAMETOOLONG : 0;
		if (!ret) {
			snprintf(dst, sizeof(dst), "%.*s", (int)n, o->dst);
			ret = cp_recv_target(r, dst);
		}
		/* "name/" promises a directory: never a file made under that name (as cp). */
		if (!ret && n < strlen(o->dst) && !r->into)
			ret = -ENOTDIR;
	}
	if (ret)
		goto fail;
	r->closed = false;
	*out = r;
	return 0;
fail:
	snprintf(why, whylen, "%s: %s", o->dst ? o->dst : "-", sys_strerror(ret));
	cp_recv_free_maybe(r);
	return ret;
}

/* ---- public ---- */

void cp_recv_attach(struct cp_recv *r, struct stream *st)
{
	r->st = st;
}

int cp_recv_feed(struct cp_recv *r, struct chunk *c, const uint8_t *p, size_t len)
{
	int ret;

	if (r->closed)
		return -EPIPE;
	r->depth++;
	r->fed += len;
	ret = rec_rd_feed(&r->rd, c, p, len, cp_recv_record, r);
	if (!ret)
		cp_recv_run(r);
	r->depth--;
	cp_recv_free_maybe(r);
	return ret;
}

int cp_recv_fin(struct cp_recv *r)
{
	return r->sender_done && rec_rd_idle(&r->rd) ? 0 : -EPIPE;
}

void cp_recv_stats(const struct cp_recv *r, struct cp_done *d)
{
	*d = r->stats;
}

void cp_recv_close(struct cp_recv *r)
{
	if (r->closed)
		return;
	r->closed = true;
	r->st = NULL;
	if (r->writing)
		loop_cancel(r->loop, &r->wreq);
	cp_recv_free_maybe(r);
}
