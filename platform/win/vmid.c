/* Hyper-V VM names to VMIDs: a WMI query of root\virtualization\v2, on a thread of its own. */
#define COBJMACROS
#include <winsock2.h>
#include <windows.h>
#include <objbase.h>
#include <oleauto.h>
#include <wbemidl.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/why.h"
#include "platform/win/err.h"
#include "platform/win/vmid.h"
#include "platform/win/wmi.h"

/*
 * Hyper-V names its VMs in WMI: every VM is an Msvm_ComputerSystem in
 * root\virtualization\v2 whose ElementName is the name Get-VM shows and whose
 * Name is the VMID. The host itself is an Msvm_ComputerSystem too, with its
 * computer name (at most 15 characters, never a GUID) as Name: counting only
 * the objects whose Name is a GUID keeps to VMs without depending on Caption,
 * which Windows may translate. Names are not unique in Hyper-V, hence the
 * count: one VM is an answer, several are the caller's to tell apart.
 *
 * Each lookup runs on a new thread that joins the multithreaded apartment,
 * so no caller's thread (a loop's, or a tool's main thread that may be in a
 * single-threaded apartment) has its COM state changed. The project calls
 * neither CoInitializeSecurity (process-wide, once) nor relies on the
 * registry's default impersonation level: the proxies of the connection and
 * of the enumerator get RPC_C_IMP_LEVEL_IMPERSONATE, which the Hyper-V
 * provider requires.
 */

#define VMID_NAMESPACE	 L"ROOT\\virtualization\\v2"
#define VMID_QUERY_HEAD	 "SELECT Name FROM Msvm_ComputerSystem WHERE ElementName = '"
#define VMID_QUERY_MAX	 (sizeof(VMID_QUERY_HEAD) + 2 * URI_HOST_MAX + 2)
#define VMID_NEXT_MS	 10000 /* one IEnumWbemClassObject::Next, so that a thread always ends */
#define VMID_WHY_MAX	 200
#define VMID_THREAD_SIZE (256 * 1024)

struct vmid_job {
	volatile LONG refs; /* the caller's and the thread's */
	HANDLE thread;
	char name[URI_HOST_MAX];
	struct guid vmid;
	int result;
	char why[VMID_WHY_MAX];
};

int vmid_wql_escape(const char *in, char *out, size_t outlen)
{
	size_t n = 0;

	for (; *in; in++) {
		bool esc = *in == '\\' || *in == '\'';

		if (n + esc + 2 > outlen)
			return -ENAMETOOLONG;
		if (esc)
			out[n++] = '\\';
		out[n++] = *in;
	}
	if (n + 1 > outlen)
		return -ENAMETOOLONG;
	out[n] = '\0';
	return (int)n;
}

int vmid_from_name(const wchar_t *name, struct guid *out)
{
	char text[40];
	size_t n = 0;

	for (; name[n]; n++) {
		if (n + 1 >= sizeof(text) || name[n] > 0x7e)
			return -EINVAL;
		text[n] = (char)name[n];
	}
	text[n] = '\0';
	return guid_parse(text, out) < 0 ? -EINVAL : 0;
}

/* Connects to Hyper-V's namespace; 0 and *svc, or a negative errno with the reason in j->why. */
static int vmid_connect(struct vmid_job *j, IWbemServices **svc)
{
	HRESULT hr = wmi_connect(VMID_NAMESPACE, svc);

	if (hr == REGDB_E_CLASSNOTREG || hr == CO_E_NOTINITIALIZED)
		return why_set(j->why, sizeof(j->why), -ENOTSUP,
			       "cannot resolve VM name '%s': WMI is not available (0x%08lx)",
			       j->name, (unsigned long)hr);
	if (hr == E_OUTOFMEMORY)
		return why_set(j->why, sizeof(j->why), -ENOMEM, "out of memory");
	if ((unsigned long)hr == WBEM_E_INVALID_NAMESPACE)
		return why_set(
		    j->why, sizeof(j->why), -ENOTSUP,
		    "cannot resolve VM name '%s': Hyper-V's WMI namespace "
		    "root\\virtualization\\v2 is not available (is Hyper-V installed, and "
		    "are you an administrator?)",
		    j->name);
	if ((unsigned long)hr == WBEM_E_ACCESS_DENIED || hr == E_ACCESSDENIED)
		return why_set(j->why, sizeof(j->why), -EACCES,
			       "cannot resolve VM name '%s': access to root\\virtualization\\v2 "
			       "denied (run as an administrator or a Hyper-V Administrator)",
			       j->name);
	if (FAILED(hr))
		return why_set(j->why, sizeof(j->why), -EIO,
			       "cannot resolve VM name '%s': WMI connect failed (0x%08lx)", j->name,
			       (unsigned long)hr);
	return 0;
}

/* The query for j's name as a BSTR the caller frees, or NULL (too long, or no memory). */
static BSTR vmid_query_text(const struct vmid_job *j)
{
	char q[VMID_QUERY_MAX];
	wchar_t w[VMID_QUERY_MAX];
	size_t head = sizeof(VMID_QUERY_HEAD) - 1;
	int n;

	memcpy(q, VMID_QUERY_HEAD, head);
	n = vmid_wql_escape(j->name, q + head, sizeof(q) - head - 1);
	if (n < 0)
		return NULL;
	memcpy(q + head + (size_t)n, "'", 2);
	if (!MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, q, -1, w, VMID_QUERY_MAX))
		return NULL;
	return SysAllocString(w);
}

/* Counts the VMs one result object names (0 or 1), keeping the first VMID in j. */
static int vmid_count(struct vmid_job *j, IWbemClassObject *obj, int seen)
{
	struct guid g;
	VARIANT v;
	int n = 0;

	VariantInit(&v);
	if (SUCCEEDED(IWbemClassObject_Get(obj, L"Name", 0, &v, NULL, NULL)) &&
	    V_VT(&v) == VT_BSTR && V_BSTR(&v) && !vmid_from_name(V_BSTR(&v), &g)) {
		if (!seen)
			j->vmid = g;
		n = 1;
	}
	VariantClear(&v);
	return n;
}

/* Runs the query on svc; 0 and j->vmid when exactly one VM has the name, else -errno and j->why. */
static int vmid_query(struct vmid_job *j, IWbemServices *svc)
{
	IEnumWbemClassObject *en = NULL;
	BSTR lang = SysAllocString(L"WQL"), q = vmid_query_text(j);
	HRESULT hr;
	int r, found = 0;

	if (!lang || !q) {
		r = why_set(j->why, sizeof(j->why), -EINVAL, "cannot resolve VM name '%s': %s",
			    j->name, lang ? "not UTF-8, or too long" : "out of memory");
		goto out;
	}
	hr = IWbemServices_ExecQuery(
	    svc, lang, q, WBEM_FLAG_FORWARD_ONLY | WBEM_FLAG_RETURN_IMMEDIATELY, NULL, &en);
	if (FAILED(hr)) {
		r = why_set(j->why, sizeof(j->why), -EIO,
			    "cannot resolve VM name '%s': WMI query failed (0x%08lx)", j->name,
			    (unsigned long)hr);
		goto out;
	}
	wmi_blanket((IUnknown *)en);
	for (;;) {
		IWbemClassObject *obj = NULL;
		ULONG got = 0;

		hr = IEnumWbemClassObject_Next(en, VMID_NEXT_MS, 1, &obj, &got);
		if (FAILED(hr) || !got)
			break;
		found += vmid_count(j, obj, found);
		IWbemClassObject_Release(obj);
	}
	if (FAILED(hr))
		r = why_set(j->why, sizeof(j->why), -EIO,
			    "cannot resolve VM name '%s': WMI query failed (0x%08lx)", j->name,
			    (unsigned long)hr);
	else if (hr == WBEM_S_TIMEDOUT)
		r = why_set(j->why, sizeof(j->why), -ETIMEDOUT,
			    "cannot resolve VM name '%s': WMI did not answer in %d ms", j->name,
			    VMID_NEXT_MS);
	else if (!found)
		r = why_set(j->why, sizeof(j->why), -ENXIO, "no Hyper-V VM named '%s'", j->name);
	else if (found > 1)
		r = why_set(
		    j->why, sizeof(j->why), -EINVAL,
		    "%d Hyper-V VMs are named '%s': give the VMID (Get-VM '%s' | Select Id)", found,
		    j->name, j->name);
	else
		r = 0;
out:
	if (en)
		IEnumWbemClassObject_Release(en);
	if (q)
		SysFreeString(q);
	if (lang)
		SysFreeString(lang);
	return r;
}

/* The lookup, on the job's own thread: COM in, connect, query, COM out. */
static int vmid_lookup(struct vmid_job *j)
{
	IWbemServices *svc = NULL;
	HRESULT hr = CoInitializeEx(NULL, COINIT_MULTITHREADED);
	int r;

	if (FAILED(hr))
		return why_set(j->why, sizeof(j->why), -EIO,
			       "cannot resolve VM name '%s': COM failed to start (0x%08lx)",
			       j->name, (unsigned long)hr);
	r = vmid_connect(j, &svc);
	if (!r)
		r = vmid_query(j, svc);
	if (svc)
		IWbemServices_Release(svc);
	CoUninitialize();
	return r;
}

static DWORD WINAPI vmid_thread(void *arg)
{
	struct vmid_job *j = arg;

	j->result = vmid_lookup(j);
	vmid_job_release(j);
	return 0;
}

int vmid_job_start(const char *name, struct vmid_job **out)
{
	struct vmid_job *j = calloc(1, sizeof(*j));
	size_t n = strlen(name);

	*out = NULL;
	if (!j)
		return -ENOMEM;
	if (n >= sizeof(j->name)) {
		free(j);
		return -ENAMETOOLONG;
	}
	memcpy(j->name, name, n + 1);
	j->refs = 2;
	j->result = -EINPROGRESS;
	j->thread = CreateThread(NULL, VMID_THREAD_SIZE, vmid_thread, j,
				 STACK_SIZE_PARAM_IS_A_RESERVATION, NULL);
	if (!j->thread) {
		int r = err_win_last();

		free(j);
		return r;
	}
	*out = j;
	return 0;
}

HANDLE vmid_job_handle(const struct vmid_job *j)
{
	return j->thread;
}

int vmid_job_result(const struct vmid_job *j, struct guid *out, char *why, size_t whylen)
{
	if (j->result < 0)
		return why_set(why, whylen, j->result, "%s", j->why);
	*out = j->vmid;
	return 0;
}

/* Lets go of j; the last of the caller and the thread frees it (the thread's handle with it). */
void vmid_job_release(struct vmid_job *j)
{
	if (!j || InterlockedDecrement(&j->refs))
		return;
	CloseHandle(j->thread);
	free(j);
}

int vmid_resolve(const char *name, uint32_t timeout_ms, struct guid *out, char *why, size_t whylen)
{
	struct vmid_job *j = NULL;
	DWORD w;
	int r = vmid_job_start(name, &j);

	if (r < 0)
		return why_set(why, whylen, r, "cannot resolve VM name '%s': no thread for it",
			       name);
	w = WaitForSingleObject(j->thread, timeout_ms ? timeout_ms : VMID_TIMEOUT_MS);
	if (w == WAIT_OBJECT_0)
		r = vmid_job_result(j, out, why, whylen);
	else if (w == WAIT_TIMEOUT)
		r = why_set(why, whylen, -ETIMEDOUT,
			    "cannot resolve VM name '%s': WMI did not answer in %u ms", name,
			    (unsigned)(timeout_ms ? timeout_ms : VMID_TIMEOUT_MS));
	else
		r = why_set(why, whylen, err_win_last(), "cannot resolve VM name '%s': wait failed",
			    name);
	vmid_job_release(j);
	return r;
}
