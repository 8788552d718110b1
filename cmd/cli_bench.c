/* vmbusify bench: round trips and throughput of a VM's channel, both ways, 1 and N streams. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cmd/cli.h"
#include "core/bench.h"
#include "core/kinds.h"
#include "core/stats.h"
#include "core/strbuf.h"
#include "core/wire.h"
#include "platform/sys.h"

/*
 * Every measurement is a set of BENCH streams run together on the CLI's loop:
 *   rtt        one ECHO stream, 1 byte at a time (the same path data takes)
 *   host->vm   SINK streams: we write for the duration, then FIN; the agent
 *              answers the byte count it received, which is what counts
 *   vm->host   SOURCE streams: the agent writes; we count what arrives by
 *              the deadline, then reset
 * and "rtt under load" runs the ECHO stream beside one host->vm stream.
 */

struct bench_flow {
	struct bench_run *run;
	struct stream *st;
	uint8_t mode;
	bool open, done;
	uint64_t bytes;
	uint64_t t_start, t_end;
	/* echo */
	uint64_t t_sent;
	bool echo_wait;
};

struct bench_run {
	struct cli_conn *c;
	struct chunk *pattern;
	struct bench_flow *flows;
	int nflows;
	int ndone;
	bool all_done;
	uint64_t deadline;
	struct samples rtt;
	const char *error;
	char why[256];
};

struct bench_result {
	const char *name;
	int streams;
	uint64_t bytes;
	double seconds;
	double min_mbps, max_mbps;
};

static void bench_flow_end(struct bench_flow *f)
{
	struct bench_run *r = f->run;

	if (f->done)
		return;
	f->done = true;
	if (!f->t_end)
		f->t_end = clock_now_ns();
	if (f->st)
		stream_release(f->st);
	f->st = NULL;
	if (++r->ndone == r->nflows)
		r->all_done = true;
}

static void bench_flow_fail(struct bench_flow *f, const char *why)
{
	struct bench_run *r = f->run;

	if (!r->error) {
		snprintf(r->why, sizeof(r->why), "%s", why);
		r->error = r->why;
	}
	bench_flow_end(f);
}

/* SINK: writes the pattern while writable until the deadline, then FIN. */
static void bench_flow_pump(struct bench_flow *f)
{
	struct chunk *p = f->run->pattern;

	while (!f->done && stream_writable(f->st)) {
		if (clock_now_ns() >= f->run->deadline) {
			stream_shutdown(f->st);
			return;
		}
		if (stream_write(f->st, p, p->data, p->size))
			return;
	}
}

static void bench_echo_send(struct bench_flow *f)
{
	uint8_t b = 0x5a;

	if (clock_now_ns() >= f->run->deadline) {
		bench_flow_end(f);
		return;
	}
	f->t_sent = clock_now_ns();
	f->echo_wait = true;
	if (stream_write_copy(f->st, &b, 1))
		bench_flow_fail(f, "cannot write to the echo stream");
}

static void bench_on_reply(struct stream *st, int err, const uint8_t *reply, size_t len)
{
	struct bench_flow *f = stream_ctx(st);
	char why[300];

	if (err) {
		snprintf(why, sizeof(why), "the agent refused the benchmark: %.*s", (int)len,
			 (const char *)reply);
		f->st = NULL;
		stream_release(st);
		bench_flow_fail(f, why);
		return;
	}
	f->open = true;
	f->t_start = clock_now_ns();
	if (f->mode == BENCH_SINK)
		bench_flow_pump(f);
	else if (f->mode == BENCH_ECHO)
		bench_echo_send(f);
}

static void bench_on_data(struct stream *st, struct chunk *c, const uint8_t *p, size_t len)
{
	struct bench_flow *f = stream_ctx(st);
	uint64_t now = clock_now_ns();

	stream_consumed(st, len);
	if (f->mode == BENCH_SINK) {
		if (len == 8)
			f->bytes = wire_get_u64(p);
		return;
	}
	if (f->mode == BENCH_ECHO) {
		f->echo_wait = false;
		samples_add(&f->run->rtt, now - f->t_sent);
		bench_echo_send(f);
		return;
	}
	f->bytes += len;
	if (now >= f->run->deadline) {
		f->t_end = now;
		bench_flow_end(f); /* the release resets the source */
	}
}

static void bench_on_fin(struct stream *st)
{
	struct bench_flow *f = stream_ctx(st);

	f->t_end = clock_now_ns();
	if (f->mode != BENCH_SINK)
		stream_shutdown(st);
	bench_flow_end(f);
}

static void bench_on_reset(struct stream *st, int err)
{
	struct bench_flow *f = stream_ctx(st);
	char why[128];

	snprintf(why, sizeof(why), "a benchmark stream was reset: %s", sys_strerror(err));
	bench_flow_fail(f, why);
}

static void bench_on_writable(struct stream *st)
{
	struct bench_flow *f = stream_ctx(st);

	if (f->mode == BENCH_SINK)
		bench_flow_pump(f);
}

static const struct stream_ops bench_client_ops = {
    .on_reply = bench_on_reply,
    .on_data = bench_on_data,
    .on_fin = bench_on_fin,
    .on_reset = bench_on_reset,
    .on_writable = bench_on_writable,
};

/* Opens one flow; returns 0 or a negative errno. */
static int bench_flow_open(struct bench_run *r, struct bench_flow *f, uint8_t mode)
{
	struct bench_req q = {.mode = mode, .bytes = mode == BENCH_SOURCE ? UINT64_MAX / 2 : 0};
	uint8_t req[BENCH_REQ_LEN];

	f->run = r;
	f->mode = mode;
	bench_req_encode(req, &q);
	return stream_open(r->c->s, KIND_BENCH, mode == BENCH_ECHO ? FRAME_OPEN_INTERACTIVE : 0,
			   req, sizeof(req), &bench_client_ops, f, &f->st);
}

/* Shows the bytes moved so far on a terminal. */
static void bench_progress(struct bench_run *r, const char *name, uint64_t t0, bool show)
{
	uint64_t bytes = 0;
	double secs = (double)(clock_now_ns() - t0) / 1e9;

	if (!show)
		return;
	for (int i = 0; i < r->nflows; i++)
		if (r->flows[i].mode == BENCH_SOURCE)
			bytes += r->flows[i].bytes;
	if (bytes)
		fprintf(stderr, "\r%-24s %6.1fs %10.1f MB/s   ", name, secs,
			(double)bytes / 1e6 / secs);
	else
		fprintf(stderr, "\r%-24s %6.1fs                  ", name, secs);
}

/*
 * Runs nbulk flows of mode plus, if echo, one ECHO flow for duration_ns and
 * fills res from the bulk flows. Returns 0 or -1 (r->error says why).
 */
static int bench_run_set(struct bench_run *r, const char *name, uint8_t mode, int nbulk, bool echo,
			 uint64_t duration_ns, bool progress, struct bench_result *res)
{
	uint64_t t0 = clock_now_ns(), last = t0, min_ns = UINT64_MAX, max_ns = 0;
	int n = nbulk + (echo ? 1 : 0);

	r->flows = calloc((size_t)n, sizeof(*r->flows));
	if (!r->flows)
		return -1;
	r->nflows = n;
	r->ndone = 0;
	r->all_done = false;
	r->deadline = t0 + duration_ns;
	for (int i = 0; i < n; i++)
		if (bench_flow_open(r, &r->flows[i], i < nbulk ? mode : BENCH_ECHO))
			bench_flow_fail(&r->flows[i], "cannot open a stream");
	while (!r->all_done && !r->c->closed) {
		loop_run_once(r->c->rl->loop, 100000000ull);
		if (clock_now_ns() - last > 500000000ull) {
			last = clock_now_ns();
			bench_progress(r, name, t0, progress);
		}
	}
	if (progress)
		fprintf(stderr, "\r%60s\r", "");
	memset(res, 0, sizeof(*res));
	res->name = name;
	res->streams = nbulk;
	res->min_mbps = 1e30;
	for (int i = 0; i < nbulk; i++) {
		struct bench_flow *f = &r->flows[i];
		double secs = (double)(f->t_end - f->t_start) / 1e9;
		double mbps = secs > 0 ? (double)f->bytes / 1e6 / secs : 0;

		res->bytes += f->bytes;
		min_ns = f->t_start < min_ns ? f->t_start : min_ns;
		max_ns = f->t_end > max_ns ? f->t_end : max_ns;
		res->min_mbps = mbps < res->min_mbps ? mbps : res->min_mbps;
		res->max_mbps = mbps > res->max_mbps ? mbps : res->max_mbps;
	}
	res->seconds = nbulk ? (double)(max_ns - min_ns) / 1e9 : 0;
	for (int i = 0; i < n; i++)
		if (!r->flows[i].done)
			bench_flow_end(&r->flows[i]);
	free(r->flows);
	r->flows = NULL;
	if (r->c->closed && !r->error)
		r->error = r->c->close_reason;
	return r->error ? -1 : 0;
}

static void bench_print_result(struct strbuf *out, const struct bench_result *res, bool json)
{
	double mbps = res->seconds > 0 ? (double)res->bytes / 1e6 / res->seconds : 0;

	if (json) {
		strbuf_printf(out,
			      "%s{\"name\":\"%s\",\"streams\":%d,\"bytes\":%llu,\"seconds\":%.3f,"
			      "\"MBps\":%.1f,\"Gbps\":%.3f,\"stream_min_MBps\":%.1f,"
			      "\"stream_max_MBps\":%.1f}",
			      out->len && out->p[out->len - 1] == '}' ? "," : "", res->name,
			      res->streams, (unsigned long long)res->bytes, res->seconds, mbps,
			      mbps * 8 / 1000, res->min_mbps, res->max_mbps);
		return;
	}
	strbuf_printf(out, "%-12s %7d %9.2f %10.1f %9.3f %10.1f %10.1f\n", res->name, res->streams,
		      res->seconds, mbps, mbps * 8 / 1000, res->min_mbps, res->max_mbps);
}

static void bench_print_rtt(struct strbuf *out, const char *name, struct samples *s, bool json)
{
	struct summary sum;

	samples_summary(s, &sum);
	if (json)
		strbuf_printf(
		    out,
		    "\"%s\":{\"n\":%zu,\"min_ms\":%.4f,\"median_ms\":%.4f,\"p99_ms\":%.4f,"
		    "\"max_ms\":%.4f},",
		    name, sum.n, (double)sum.min / 1e6, (double)sum.median / 1e6,
		    (double)sum.p99 / 1e6, (double)sum.max / 1e6);
	else
		strbuf_printf(out,
			      "%-12s n=%zu min %.3f ms, median %.3f ms, p99 %.3f ms, max %.3f ms\n",
			      name, sum.n, (double)sum.min / 1e6, (double)sum.median / 1e6,
			      (double)sum.p99 / 1e6, (double)sum.max / 1e6);
	samples_free(s);
}

struct bench_opts {
	double seconds;
	int streams;
	bool json;
	bool progress;
};

/* Runs the whole suite over c and prints it; returns a cli_exit code. */
static int bench_suite(struct cli_conn *c, const struct bench_opts *o)
{
	struct bench_run r = {.c = c};
	struct bench_result res[4];
	struct strbuf rtt = {0}, out = {0};
	uint64_t dur = (uint64_t)(o->seconds * 1e9);
	static const struct {
		const char *name;
		uint8_t mode;
		bool many;
	} sets[] = {
	    {"host->vm", BENCH_SINK, false},
	    {"vm->host", BENCH_SOURCE, false},
	    {"host->vm", BENCH_SINK, true},
	    {"vm->host", BENCH_SOURCE, true},
	};
	int ret = CLI_OK;

	r.pattern = chunk_get(&c->rl->chunks);
	if (!r.pattern)
		return CLI_FAIL;
	bench_fill(r.pattern);
	if (bench_run_set(&r, "rtt idle", 0, 0, true, dur / 2 + 1, o->progress, &res[0]))
		goto fail;
	bench_print_rtt(&rtt, o->json ? "rtt_idle" : "rtt idle", &r.rtt, o->json);
	if (bench_run_set(&r, "rtt under load", BENCH_SINK, 1, true, dur, o->progress, &res[0]))
		goto fail;
	bench_print_rtt(&rtt, o->json ? "rtt_loaded" : "rtt loaded", &r.rtt, o->json);
	for (int i = 0; i < 4; i++) {
		if (bench_run_set(&r, sets[i].name, sets[i].mode, sets[i].many ? o->streams : 1,
				  false, dur, o->progress, &res[i]))
			goto fail;
		bench_print_result(&out, &res[i], o->json);
	}
	if (o->json)
		printf("{\"target\":\"%s\",\"via_daemon\":%s,%s\"tests\":[%s]}\n", c->target,
		       c->via_daemon ? "true" : "false", rtt.p, out.p);
	else
		printf("%s (%s)\n%s%-12s %7s %9s %10s %9s %10s %10s\n%s", c->target,
		       c->via_daemon ? "through vmbusifyd" : "direct", rtt.p, "direction",
		       "streams", "seconds", "MB/s", "Gbit/s", "min MB/s", "max MB/s", out.p);
	goto out;
fail:
	cli_error(c->target, "%s", r.error ? r.error : "benchmark failed");
	ret = CLI_FAIL;
out:
	chunk_put(r.pattern);
	strbuf_free(&rtt);
	strbuf_free(&out);
	return ret;
}

static void bench_usage(void)
{
	fprintf(stderr, "usage: vmbusify bench [-t SECONDS] [-P STREAMS] [--json] VM\n");
}

int cli_bench(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"time", required_argument, NULL, 't'},
	    {"parallel", required_argument, NULL, 'P'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	struct bench_opts o = {.seconds = 2, .streams = 8, .progress = sys_isatty(2)};
	struct cli_conn c;
	char *end;
	int opt, ret;

	while ((opt = getopt_long(argc, argv, "t:P:jh", opts, NULL)) != -1) {
		switch (opt) {
		case 't':
			o.seconds = strtod(optarg, &end);
			if (*end || o.seconds < 0.1 || o.seconds > 3600) {
				cli_error("bench", "time must be 0.1 to 3600 seconds");
				return CLI_USAGE;
			}
			break;
		case 'P':
			o.streams = atoi(optarg);
			if (o.streams < 1 || o.streams > 1024) {
				cli_error("bench", "streams must be 1 to 1024");
				return CLI_USAGE;
			}
			break;
		case 'j':
			o.json = true;
			break;
		default:
			bench_usage();
			return opt == 'h' ? CLI_OK : CLI_USAGE;
		}
	}
	if (optind + 1 != argc) {
		bench_usage();
		return CLI_USAGE;
	}
	ret = cli_connect(&c, argv[optind]);
	if (!ret)
		ret = bench_suite(&c, &o);
	cli_close(&c);
	return ret;
}
