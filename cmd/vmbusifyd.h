/* vmbusifyd's main, shared by the Linux main and the Windows one (service and console). */
#ifndef VB_CMD_VMBUSIFYD_H
#define VB_CMD_VMBUSIFYD_H

#include <stdbool.h>
#include <stddef.h>

/* What differs between systems; the configuration file and the command line override it. */
struct vmbusifyd_defaults {
	const char *config;	 /* read when --config is not given; a missing one is no error */
	const char *control;	 /* the control socket's URI (unix:///PATH, npipe://NAME) */
	const char *state_dir;	 /* kept across restarts (the forwards); "" for nothing */
	const char *usage_extra; /* more lines of usage (the Windows subcommands); may be NULL */
	/* Called once the daemon serves, before it waits for the stop; may be NULL. */
	void (*on_ready)(void);
	/*
	 * Called with the one line of an error that ends the daemon ("vmbusifyd:
	 * WHAT: WHY", no newline) where it has no stderr (a Windows service);
	 * NULL: the line goes to stderr.
	 */
	void (*on_error)(const char *line);
	/*
	 * Called once the configuration file (config, read already but not acted
	 * on) and the state directory (state_dir; "" for none) are known, before
	 * the daemon starts: 0 to go on, or a negative errno with a one-line
	 * reason in why to refuse the start (Windows: who may change them). NULL:
	 * no check.
	 */
	int (*check_paths)(const char *config, bool config_explicit, const char *state_dir,
			   char *why, size_t whylen);
};

/* Runs vmbusifyd with argv (options only) until it is told to stop; returns the exit code. */
int vmbusifyd_main(int argc, char **argv, const struct vmbusifyd_defaults *def);

#endif
