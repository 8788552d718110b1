/* vmbusify-agent's wiring: listeners on the channel, sessions on the loops, streams to services. */
#ifndef VB_CMD_AGENT_H
#define VB_CMD_AGENT_H

#include "core/runtime.h"
#include "platform/transport.h"

#define AGENT_MAX_LISTEN 8

struct agent_listener {
	struct agent *a;
	struct uri uri;
	char text[300];
	struct transport_listener *tl;
	struct transport_accept_req acc;
	struct rt_loop *home;
	bool single; /* serial: accept again only after the session ended */
};

struct agent {
	struct runtime rt;
	struct transport_opts topts;
	struct agent_listener listeners[AGENT_MAX_LISTEN];
	int nlisteners;
};

int agent_init(struct agent *a, int threads, enum loop_backend backend, const char *token_file);
/* Parses and binds uri now, so that errors show before the agent goes to the background. */
int agent_listen(struct agent *a, const char *uri, char *why, size_t whylen);
int agent_start(struct agent *a, char *why, size_t whylen);
void agent_stop(struct agent *a);

#endif
