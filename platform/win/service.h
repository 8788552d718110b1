/* Windows only: running as a service, and registering one with the SCM and Hyper-V. */
#ifndef VB_PLATFORM_WIN_SERVICE_H
#define VB_PLATFORM_WIN_SERVICE_H

#include <stddef.h>

/* What `install` registers. */
struct service_spec {
	const char *name;	 /* the service's key name, e.g. "vmbusifyd" */
	const char *display;	 /* what services.msc shows */
	const char *description; /* its description line */
	/*
	 * The service runs this executable with "--service" and then the
	 * process's own command-line arguments after the first arg_skip (the
	 * program and "install"), taken from GetCommandLineW() so that no code
	 * page conversion touches them.
	 */
	int arg_skip;
};

/*
 * service_run() - hands the process to the Service Control Manager's
 * dispatcher and runs fn(argc, argv) as service name's main; blocks until fn
 * returns and the service is reported stopped. A stop or shutdown request
 * wakes sys_wait_termination() (as Ctrl+C does in a console); fn calls
 * service_ready() once it serves.
 * Return: fn's exit code, or a negative errno when the process was not
 * started by the SCM (-ENOTSUP) or the dispatcher failed.
 */
int service_run(const char *name, int (*fn)(int argc, char **argv), int argc, char **argv);
/* service_ready() - reports SERVICE_RUNNING (outside a service: nothing). */
void service_ready(void);

/*
 * service_install() - creates the auto-start service of s (or updates its
 * command line when it exists), with the running executable's path.
 * Return: 0 with what was done in msg; a negative errno (-EACCES: not an
 * elevated Administrator) with a one-line reason in msg.
 */
int service_install(const struct service_spec *s, char *msg, size_t msglen);
/*
 * service_uninstall() - stops service name (waiting up to 30 s) and deletes it.
 * Return: 0 with what was done in msg (also when there was no such service),
 * or a negative errno with a one-line reason in msg.
 */
int service_uninstall(const char *name, char *msg, size_t msglen);

/*
 * service_hv_register() - writes HKLM\SOFTWARE\Microsoft\Windows NT\
 * CurrentVersion\Virtualization\GuestCommunicationServices\<guid> with
 * ElementName = element, which lets Hyper-V sockets reach the service GUID.
 * Return: 0, or a negative errno with a one-line reason in msg.
 */
int service_hv_register(const char *guid, const char *element, char *msg, size_t msglen);
/*
 * service_hv_unregister() - removes that key.
 * Return: 0 (msg says whether it was there), or a negative errno with a reason in msg.
 */
int service_hv_unregister(const char *guid, char *msg, size_t msglen);

#endif
