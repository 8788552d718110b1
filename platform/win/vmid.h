/* Private to platform/win: Hyper-V VM names to VMIDs, through WMI (root\virtualization\v2). */
#ifndef VB_PLATFORM_WIN_VMID_H
#define VB_PLATFORM_WIN_VMID_H

#include <windows.h>
#include <stddef.h>
#include <stdint.h>
#include "core/uri.h"

/* How long a blocking vmid_resolve() waits for WMI when the caller gives no bound. */
#define VMID_TIMEOUT_MS 15000u

/*
 * vmid_wql_escape() - writes in as the inside of a WQL string literal in
 * single quotes: backslash and single quote get a backslash (the WQL escape),
 * other bytes (UTF-8 included) stay. Return: the length written (out is NUL
 * terminated), or -ENAMETOOLONG when out is too small.
 */
int vmid_wql_escape(const char *in, char *out, size_t outlen);

/*
 * vmid_from_name() - the VMID in the Name property of an Msvm_ComputerSystem
 * ("5B3F...-...", 36 characters, either case, braces allowed). The host's own
 * Msvm_ComputerSystem has its computer name there, which fails. Return: 0, or
 * -EINVAL when name is not a GUID.
 */
int vmid_from_name(const wchar_t *name, struct guid *out);

/*
 * A lookup running on a thread of its own (WMI calls block, for seconds on a
 * cold host). The caller waits on vmid_job_handle() (signalled when the thread
 * has ended: loop_poll() can wait for it on the loop's shim), then reads the
 * result. The job is shared by the caller and its thread: each lets go with
 * vmid_job_release(), and the last one frees it, so a caller that gives up
 * (a cancel, a deadline) releases at once and the thread finishes alone.
 */
struct vmid_job;

/* Starts looking name up; 0 and a job the caller releases, or a negative errno. */
int vmid_job_start(const char *name, struct vmid_job **out);
/* The thread's handle, waitable; valid until the caller's vmid_job_release(). */
HANDLE vmid_job_handle(const struct vmid_job *j);
/*
 * vmid_job_result() - after the handle was signalled: 0 and the VMID, or a
 * negative errno with a one-line reason in why (no VM, several, no Hyper-V).
 */
int vmid_job_result(const struct vmid_job *j, struct guid *out, char *why, size_t whylen);
void vmid_job_release(struct vmid_job *j);

/*
 * vmid_resolve() - blocks until name is looked up or timeout_ms (0:
 * VMID_TIMEOUT_MS) has passed. For setup steps and tools without a loop;
 * the calling thread's COM apartment is left alone. Return: 0 and the VMID,
 * or a negative errno with a one-line reason (-ETIMEDOUT when WMI took too long).
 */
int vmid_resolve(const char *name, uint32_t timeout_ms, struct guid *out, char *why, size_t whylen);

#endif
