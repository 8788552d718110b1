/* The registry of stream kinds carried in OPEN (docs/protocol.md, "Stream kinds"). */
#ifndef VB_CORE_KINDS_H
#define VB_CORE_KINDS_H

enum stream_kind {
	KIND_BENCH = 1,	  /* throughput and latency probes: sink, source, echo */
	KIND_CONTROL = 2, /* CLI to daemon: a text command, a text answer */
	KIND_ROUTE = 3,	  /* reserved */
	KIND_EXEC = 4,
	KIND_FILE = 5,
	KIND_TCP = 6,
	KIND_VNET = 7,
};

const char *kind_name(unsigned kind);

#endif
