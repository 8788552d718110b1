/* Private to platform/win: the few WMI steps shared by its users (VM names, WinNAT). */
#ifndef VB_PLATFORM_WIN_WMI_H
#define VB_PLATFORM_WIN_WMI_H

#include <windows.h>
#include <wbemidl.h>

/*
 * The callers run WMI on a thread of their own that has joined the
 * multithreaded apartment (CoInitializeEx), so that no caller's COM state
 * changes; the project never calls CoInitializeSecurity (process-wide), and
 * sets the proxy blanket on each proxy instead.
 */

/* Sets the blanket providers want (impersonate); refused, harmlessly, for in-process objects. */
void wmi_blanket(IUnknown *proxy);

/*
 * wmi_connect() - connects to namespace ns (L"ROOT\\StandardCimv2") of this
 * machine, with the blanket set. Return: S_OK and *svc (the caller releases
 * it), or the failing HRESULT: REGDB_E_CLASSNOTREG and friends when WMI is
 * missing, WBEM_E_INVALID_NAMESPACE, WBEM_E_ACCESS_DENIED or E_ACCESSDENIED,
 * E_OUTOFMEMORY.
 */
HRESULT wmi_connect(const wchar_t *ns, IWbemServices **svc);

#endif
