/* vmbusifyd's main, shared by the Linux main and the Windows one (service and console). */
#ifndef VB_CMD_VMBUSIFYD_H
#define VB_CMD_VMBUSIFYD_H

/* What differs between systems; the configuration file and the command line override it. */
struct vmbusifyd_defaults {
	const char *config;	 /* read when --config is not given; a missing one is no error */
	const char *control;	 /* the control socket's URI (unix:///PATH, npipe://NAME) */
	const char *state_dir;	 /* kept across restarts (the forwards); "" for nothing */
	const char *usage_extra; /* more lines of usage (the Windows subcommands); may be NULL */
	/* Called once the daemon serves, before it waits for the stop; may be NULL. */
	void (*on_ready)(void);
};

/* Runs vmbusifyd with argv (options only) until it is told to stop; returns the exit code. */
int vmbusifyd_main(int argc, char **argv, const struct vmbusifyd_defaults *def);

#endif
