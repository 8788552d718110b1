/* Fuzz target: the EXEC request decoder and the record parser, as an agent meets them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "core/rec.h"
#include "exec/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Touches every byte of a piece, so that ASan sees a read out of bounds. */
static int fuzz_exec_piece(void *arg, uint8_t type, struct chunk *c, const uint8_t *p, size_t n,
			   bool first, bool last)
{
	unsigned *sum = arg;

	for (size_t i = 0; i < n; i++)
		*sum += p[i];
	if (type == EXEC_REC_EXIT) {
		struct exec_exit e;

		if (!exec_exit_decode(p, n, &e))
			*sum += (unsigned)exec_exit_status(&e);
	}
	return type > EXEC_REC_EXIT ? -1 : 0;
}

/* Byte 0 picks the parser; for records, byte 1 sets the piece size. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct exec_req q;
	struct rec_rd rd;
	unsigned sum = 0;
	char why[256];
	void *mem;

	if (size < 2)
		return 0;
	if (data[0] & 1) {
		if (!exec_req_decode(data + 1, size - 1, &q, &mem, why, sizeof(why))) {
			for (uint16_t i = 0; i < q.argc; i++)
				sum += (unsigned)strlen(q.argv[i]);
			for (uint16_t i = 0; i < q.envc; i++)
				sum += (unsigned)strlen(q.env[i]);
			free(mem);
		}
		return 0;
	}
	rec_rd_init(&rd);
	for (size_t off = 2, step = (size_t)data[1] + 1; off < size; off += step) {
		size_t n = size - off < step ? size - off : step;

		if (rec_rd_feed(&rd, NULL, data + off, n, fuzz_exec_piece, &sum))
			break;
	}
	return (int)(sum & 0);
}
