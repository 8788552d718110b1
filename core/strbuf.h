/* A growable string for building answers and JSON. */
#ifndef VB_CORE_STRBUF_H
#define VB_CORE_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

struct strbuf {
	char *p;
	size_t len, cap;
	bool err; /* an allocation failed; the text is truncated */
};

void strbuf_printf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal, with quotes and escapes. */
void strbuf_json_str(struct strbuf *b, const char *s);
/* Appends n bytes as they are (NUL included). */
void strbuf_mem(struct strbuf *b, const void *p, size_t n);
void strbuf_free(struct strbuf *b);

#endif
