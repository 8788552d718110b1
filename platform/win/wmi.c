/* The WMI steps shared by platform/win's users: see wmi.h. */
#define COBJMACROS
#include <winsock2.h>
#include <windows.h>
#include <objbase.h>
#include <oleauto.h>
#include <wbemidl.h>
#include "platform/win/wmi.h"

void wmi_blanket(IUnknown *proxy)
{
	CoSetProxyBlanket(proxy, RPC_C_AUTHN_WINNT, RPC_C_AUTHZ_NONE, NULL, RPC_C_AUTHN_LEVEL_CALL,
			  RPC_C_IMP_LEVEL_IMPERSONATE, NULL, EOAC_NONE);
}

HRESULT wmi_connect(const wchar_t *ns, IWbemServices **svc)
{
	IWbemLocator *loc = NULL;
	BSTR name = NULL;
	HRESULT hr;

	*svc = NULL;
	hr = CoCreateInstance(&CLSID_WbemLocator, NULL, CLSCTX_INPROC_SERVER, &IID_IWbemLocator,
			      (void **)&loc);
	if (FAILED(hr))
		goto out;
	name = SysAllocString(ns);
	if (!name) {
		hr = E_OUTOFMEMORY;
		goto out;
	}
	hr = IWbemLocator_ConnectServer(loc, name, NULL, NULL, NULL, WBEM_FLAG_CONNECT_USE_MAX_WAIT,
					NULL, NULL, svc);
	if (SUCCEEDED(hr))
		wmi_blanket((IUnknown *)*svc);
out:
	if (name)
		SysFreeString(name);
	if (loc)
		IWbemLocator_Release(loc);
	return hr;
}
