/* exec: run programs in the VM for the host (agent side) and drive them from the host (CLI side).
 */
#ifndef VB_EXEC_EXEC_H
#define VB_EXEC_EXEC_H

#include <stddef.h>
#include <stdint.h>
#include "core/session.h"
#include "platform/loop.h"

/* Agent side: serves an EXEC stream the host opened, on loop l. */
void exec_serve(struct loop *l, struct stream *st, const uint8_t *req, size_t len);

#endif
