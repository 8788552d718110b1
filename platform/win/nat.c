/* NAT on Windows with WinNAT: one MSFT_NetNat object named "vmbusify", made at start, gone at stop.
 * See platform/nat.h. */
#define COBJMACROS
#include <winsock2.h>
#include <windows.h>
#include <objbase.h>
#include <oleauto.h>
#include <wbemidl.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/log.h"
#include "core/why.h"
#include "platform/nat.h"
#include "platform/nat_internal.h"
#include "platform/win/err.h"
#include "platform/win/wmi.h"

/*
 * What Linux does with its nftables table, Windows does with WinNAT, the
 * NAT that Hyper-V and containers use: an MSFT_NetNat object in WMI
 * (ROOT\StandardCimv2, the class behind New-NetNat) named NAT_TABLE whose
 * InternalIPInterfaceAddressPrefix is the subnet's IPv4 prefix. Packets
 * from that prefix that leave by any other interface take its address, and
 * their replies come back; WinNAT lets no new flow in from outside (static
 * mappings would), which is allow_inbound false. nat_setup() first deletes
 * any object of that name (one left by a crash), then creates it; nat_teardown()
 * deletes it. Nothing else in WinNAT is read or changed.
 *
 * What the nftables table does and WinNAT does not:
 *  - IPv6: WinNAT translates IPv4 only. The subnet's IPv6 prefix is not
 *    NAT-ed (a warning says so); VMs reach the host's side over IPv6 and no
 *    further, unless the operator routes the ULA.
 *  - The input chain (VMs kept from the host's own services): on Windows
 *    that is the firewall's job for the TUN's interface (its network profile
 *    is Public, whose rules apply); nothing here adds rules.
 *  - allow_inbound true cannot be honoured (-EOPNOTSUPP).
 * WinNAT takes one internal prefix per object, and refuses one that
 * overlaps another object's (Docker's, a Hyper-V NAT switch's): that
 * refusal is the error.
 *
 * WMI blocks, for seconds on a cold host, so each call runs on a thread of
 * its own in the multithreaded apartment (as platform/win/vmid.c does), and
 * the caller waits for it up to NAT_WAIT_MS; a thread that outlives the wait
 * finishes alone and frees its job.
 */

#define NAT_NAMESPACE L"ROOT\\StandardCimv2"
#define NAT_CLASS     L"MSFT_NetNat"
#define NAT_QUERY     L"SELECT * FROM MSFT_NetNat WHERE Name = '" NAT_TABLE "'"
#define NAT_WAIT_MS   30000u
#define NAT_NEXT_MS   10000
#define NAT_WHY_MAX   256

struct nat_job {
	volatile LONG refs; /* the caller's and the thread's */
	bool create;	    /* setup (delete, then create) or teardown (delete) */
	wchar_t prefix[64]; /* "10.77.0.0/24" */
	int result;
	char why[NAT_WHY_MAX];
};

/* ---- rendering ---- */

/* The masked prefix p as "a.b.c.d/len", or -EINVAL when it is not one of family's. */
static int nat_prefix_text(const struct netcfg_prefix *p, int family, char *out)
{
	struct netcfg_prefix net = *p;
	char addr[NET_ADDR_STRLEN];

	if (p->addr.family != family || p->len > (family == NET_IPV4 ? 32 : 128))
		return -EINVAL;
	netcfg_prefix_mask(&net);
	snprintf(out, NET_ADDR_STRLEN + 8, "%s/%u", net_addr_format(&net.addr, false, addr),
		 net.len);
	return 0;
}

/* Checks c the way nat_setup() needs it; 0 and the IPv4 prefix's text, or -errno with why. */
static int nat_check(const struct nat_config *c, char *v4, char *why, size_t whylen)
{
	if (c->v4.addr.family == 0)
		return why_set(why, whylen, -EINVAL, "NAT: WinNAT needs the subnet's IPv4 prefix");
	if (nat_prefix_text(&c->v4, NET_IPV4, v4) < 0)
		return why_set(why, whylen, -EINVAL, "NAT: not an IPv4 prefix");
	if (c->v6.addr.family && c->v6.addr.family != NET_IPV6)
		return why_set(why, whylen, -EINVAL, "NAT: not an IPv6 prefix");
	if (c->allow_inbound)
		return why_set(why, whylen, -EOPNOTSUPP,
			       "NAT: WinNAT lets no new flow in from outside (allow_inbound)");
	return 0;
}

/*
 * On Windows there is no script: what nat_setup() does is rendered as the
 * PowerShell that does the same, which an administrator may run by hand, with
 * what WinNAT leaves undone as comments.
 */
int nat_render(const struct nat_config *c, char *buf, size_t len, char *why, size_t whylen)
{
	char v4[NET_ADDR_STRLEN + 8], v6[NET_ADDR_STRLEN + 8];
	size_t off = 0;
	int ret = nat_check(c, v4, why, whylen);

	if (ret < 0)
		return ret;
	ret = nat_append(buf, len, &off,
			 "Get-NetNat -Name " NAT_TABLE " -ErrorAction SilentlyContinue | "
			 "Remove-NetNat -Confirm:$false\n"
			 "New-NetNat -Name " NAT_TABLE " -InternalIPInterfaceAddressPrefix %s\n",
			 v4);
	if (!ret && c->v6.addr.family && nat_prefix_text(&c->v6, NET_IPV6, v6) == 0)
		ret = nat_append(buf, len, &off, "# %s: not NAT-ed (WinNAT is IPv4 only)\n", v6);
	if (!ret)
		ret = nat_append(buf, len, &off,
				 "# the host's own services: the firewall's rules for '%s'\n",
				 c->tun ? c->tun : "");
	if (ret == -ENOSPC)
		why_set(why, whylen, -ENOSPC, "NAT: the commands do not fit in %lu bytes",
			(unsigned long)len);
	return ret < 0 ? ret : (int)off;
}

/* ---- WMI, on the job's thread ---- */

/* The HRESULT of a WMI call as a negative errno with a one-line reason in j->why. */
static int nat_wmi_fail(struct nat_job *j, HRESULT hr, const char *what)
{
	unsigned long e = (unsigned long)hr;

	if (e == WBEM_E_INVALID_NAMESPACE)
		return why_set(j->why, sizeof(j->why), -ENOTSUP,
			       "NAT: WinNAT's WMI namespace ROOT\\StandardCimv2 is not available "
			       "(Windows 10 or Server 2016 and later have it)");
	if (e == WBEM_E_INVALID_CLASS || e == WBEM_E_NOT_FOUND)
		return why_set(j->why, sizeof(j->why), -ENOTSUP,
			       "NAT: WinNAT (MSFT_NetNat) is not available: enable Hyper-V or "
			       "Containers, or route the subnet yourself and set nat = no");
	if (e == WBEM_E_ACCESS_DENIED || hr == E_ACCESSDENIED)
		return why_set(j->why, sizeof(j->why), -EACCES,
			       "NAT: %s: access denied (run as Administrator)", what);
	if (e == WBEM_E_ALREADY_EXISTS)
		return why_set(j->why, sizeof(j->why), -EEXIST,
			       "NAT: %s: WinNAT refused (another NAT overlaps the subnet? see "
			       "Get-NetNat)",
			       what);
	return why_set(j->why, sizeof(j->why), -EIO, "NAT: %s failed (0x%08lx)", what, e);
}

/* Deletes every MSFT_NetNat named NAT_TABLE; 0 also when there is none. */
static int nat_wmi_delete(struct nat_job *j, IWbemServices *svc)
{
	IEnumWbemClassObject *en = NULL;
	BSTR lang = SysAllocString(L"WQL"), q = SysAllocString(NAT_QUERY);
	HRESULT hr = lang && q ? S_OK : E_OUTOFMEMORY;
	int r = 0;

	if (SUCCEEDED(hr))
		hr = IWbemServices_ExecQuery(
		    svc, lang, q, WBEM_FLAG_FORWARD_ONLY | WBEM_FLAG_RETURN_IMMEDIATELY, NULL, &en);
	if (FAILED(hr)) {
		r = nat_wmi_fail(j, hr, "looking for the old NAT");
		goto out;
	}
	wmi_blanket((IUnknown *)en);
	while (!r) {
		IWbemClassObject *obj = NULL;
		ULONG got = 0;
		VARIANT path;

		hr = IEnumWbemClassObject_Next(en, NAT_NEXT_MS, 1, &obj, &got);
		if (FAILED(hr) || hr == WBEM_S_TIMEDOUT || !got)
			break;
		VariantInit(&path);
		/* Deleted by its own path: whatever the class's keys are, this names it. */
		hr = IWbemClassObject_Get(obj, L"__RELPATH", 0, &path, NULL, NULL);
		if (SUCCEEDED(hr) && V_VT(&path) == VT_BSTR)
			hr = IWbemServices_DeleteInstance(svc, V_BSTR(&path), 0, NULL, NULL);
		if (FAILED(hr))
			r = nat_wmi_fail(j, hr, "removing the old NAT");
		VariantClear(&path);
		IWbemClassObject_Release(obj);
	}
	if (!r && (FAILED(hr) || hr == WBEM_S_TIMEDOUT))
		r = nat_wmi_fail(j, FAILED(hr) ? hr : (HRESULT)WBEM_E_TIMED_OUT,
				 "looking for the old NAT");
out:
	if (en)
		IEnumWbemClassObject_Release(en);
	if (q)
		SysFreeString(q);
	if (lang)
		SysFreeString(lang);
	return r;
}

/* Puts a string property on obj. */
static HRESULT nat_wmi_put(IWbemClassObject *obj, const wchar_t *name, const wchar_t *value)
{
	VARIANT v;
	HRESULT hr;

	VariantInit(&v);
	V_VT(&v) = VT_BSTR;
	V_BSTR(&v) = SysAllocString(value);
	if (!V_BSTR(&v))
		return E_OUTOFMEMORY;
	hr = IWbemClassObject_Put(obj, name, 0, &v, 0);
	VariantClear(&v);
	return hr;
}

/* Creates the MSFT_NetNat object, as New-NetNat does. */
static int nat_wmi_create(struct nat_job *j, IWbemServices *svc)
{
	IWbemClassObject *cls = NULL, *obj = NULL;
	BSTR name = SysAllocString(NAT_CLASS);
	HRESULT hr = name ? S_OK : E_OUTOFMEMORY;

	if (SUCCEEDED(hr))
		hr = IWbemServices_GetObject(svc, name, 0, NULL, &cls, NULL);
	if (SUCCEEDED(hr))
		hr = IWbemClassObject_SpawnInstance(cls, 0, &obj);
	if (SUCCEEDED(hr))
		hr = nat_wmi_put(obj, L"Name", L"" NAT_TABLE);
	if (SUCCEEDED(hr))
		hr = nat_wmi_put(obj, L"InternalIPInterfaceAddressPrefix", j->prefix);
	if (SUCCEEDED(hr))
		hr = IWbemServices_PutInstance(svc, obj, WBEM_FLAG_CREATE_ONLY, NULL, NULL);
	if (obj)
		IWbemClassObject_Release(obj);
	if (cls)
		IWbemClassObject_Release(cls);
	if (name)
		SysFreeString(name);
	return FAILED(hr) ? nat_wmi_fail(j, hr, "creating the NAT") : 0;
}

/* The job, on its own thread: COM in, connect, delete (and create), COM out. */
static int nat_wmi_run(struct nat_job *j)
{
	IWbemServices *svc = NULL;
	HRESULT hr = CoInitializeEx(NULL, COINIT_MULTITHREADED);
	int r;

	if (FAILED(hr))
		return why_set(j->why, sizeof(j->why), -EIO, "NAT: COM failed to start (0x%08lx)",
			       (unsigned long)hr);
	hr = wmi_connect(NAT_NAMESPACE, &svc);
	r = FAILED(hr) ? nat_wmi_fail(j, hr, "connecting to WMI") : 0;
	if (!r)
		r = nat_wmi_delete(j, svc);
	if (!r && j->create)
		r = nat_wmi_create(j, svc);
	if (svc)
		IWbemServices_Release(svc);
	CoUninitialize();
	return r;
}

static void nat_job_release(struct nat_job *j)
{
	if (!InterlockedDecrement(&j->refs))
		free(j);
}

static DWORD WINAPI nat_thread(void *arg)
{
	struct nat_job *j = arg;

	j->result = nat_wmi_run(j);
	nat_job_release(j);
	return 0;
}

/* Runs j on its thread and waits for it; its result, or -ETIMEDOUT. Takes j. */
static int nat_job_wait(struct nat_job *j, char *why, size_t whylen)
{
	HANDLE t;
	DWORD w;
	int r;

	j->refs = 2;
	t = CreateThread(NULL, 256 * 1024, nat_thread, j, STACK_SIZE_PARAM_IS_A_RESERVATION, NULL);
	if (!t) {
		r = err_win_last();
		free(j);
		return why_set(why, whylen, r, "NAT: no thread for WMI");
	}
	w = WaitForSingleObject(t, NAT_WAIT_MS);
	if (w == WAIT_OBJECT_0)
		r = j->result < 0 ? why_set(why, whylen, j->result, "%s", j->why) : 0;
	else
		r = why_set(why, whylen, -ETIMEDOUT, "NAT: WMI did not answer in %u ms",
			    NAT_WAIT_MS);
	CloseHandle(t);
	nat_job_release(j);
	return r;
}

int nat_setup(const struct nat_config *c, char *why, size_t whylen)
{
	char v4[NET_ADDR_STRLEN + 8], v6[NET_ADDR_STRLEN + 8];
	struct nat_job *j;
	int ret = nat_check(c, v4, why, whylen);

	if (ret < 0)
		return ret;
	j = calloc(1, sizeof(*j));
	if (!j)
		return why_set(why, whylen, -ENOMEM, "out of memory");
	j->create = true;
	MultiByteToWideChar(CP_UTF8, 0, v4, -1, j->prefix, 64);
	ret = nat_job_wait(j, why, whylen);
	if (!ret && c->v6.addr.family && nat_prefix_text(&c->v6, NET_IPV6, v6) == 0)
		vb_warn("vnet: %s is not NAT-ed: WinNAT translates IPv4 only", v6);
	return ret;
}

int nat_teardown(char *why, size_t whylen)
{
	struct nat_job *j = calloc(1, sizeof(*j));

	if (!j)
		return why_set(why, whylen, -ENOMEM, "out of memory");
	return nat_job_wait(j, why, whylen);
}
