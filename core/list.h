/* Intrusive doubly-linked lists, as in the Linux kernel. */
#ifndef VB_CORE_LIST_H
#define VB_CORE_LIST_H

#include <stddef.h>
#include <stdbool.h>

struct list {
	struct list *next, *prev;
};

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))
#define list_entry(ptr, type, member) container_of(ptr, type, member)

static inline void list_init(struct list *h)
{
	h->next = h->prev = h;
}

static inline bool list_empty(const struct list *h)
{
	return h->next == h;
}

/* True when n is on some list (nodes are initialised and re-initialised on removal). */
static inline bool list_linked(const struct list *n)
{
	return n->next != n;
}

static inline void list_add_tail(struct list *h, struct list *n)
{
	n->prev = h->prev;
	n->next = h;
	h->prev->next = n;
	h->prev = n;
}

static inline void list_del(struct list *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	list_init(n);
}

#define list_first(h, type, member) list_entry((h)->next, type, member)

#define list_for_each_safe(pos, tmp, h) for (pos = (h)->next, tmp = pos->next; pos != (h); pos = tmp, tmp = pos->next)

#endif
