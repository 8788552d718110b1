/* vmbusify cp, agent side: serves the FILE streams the host opens. */
#ifndef VB_EXEC_CP_H
#define VB_EXEC_CP_H

#include <stddef.h>
#include <stdint.h>
#include "core/session.h"
#include "platform/loop.h"

/* Serves a FILE stream (still pending) that the host opened, on loop l: accepts or refuses it. */
void cp_serve(struct loop *l, struct stream *st, const uint8_t *req, size_t len);

#endif
