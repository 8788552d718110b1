# The Windows build (issue 7), included by CMakeLists.txt when cross-compiling
# with cmake/mingw-w64.cmake: the OS-free core over platform/win; the host's
# command-line tool, vmbusify.exe (and vmbusexec.exe): cmd/cli*.c over exec/;
# the Windows guest's agent, vmbusify-agent.exe (cmd/agent.c: exec, cp, bench,
# TCP streams and the proxy port, over the guest's half of proxy/); the unit
# tests that are OS-free, the Windows tests (tests/win) and the interop tests,
# which CTest runs under Wine; the host daemon, vmbusifyd.exe (daemon/, the
# host's half of proxy/ and vnet's router, a Windows service). The guest's
# vnet (vnet/agent.c) and the benchmarks are Linux-only so far.

# Windows 10 APIs (AF_HYPERV, CancelIoEx, GetQueuedCompletionStatusEx);
# mingw-w64's own printf, which knows %zu and %lld.
add_compile_definitions(_WIN32_WINNT=0x0A00 WIN32_LEAN_AND_MEAN __USE_MINGW_ANSI_STDIO=1)
# The errno values mingw-w64 lacks, for every file (see the header).
add_compile_options(-include ${CMAKE_SOURCE_DIR}/platform/win/compat.h)
# No runtime DLLs beside the .exe files: libgcc and friends are linked in.
add_link_options(-static)

# ---- the allocator: mimalloc (begin) ----
# Debian packages mimalloc for Linux only: scripts/build-win.sh builds Debian's
# source package with mingw-w64 (scripts/mimalloc-win.sh, cached) and passes
# its prefix as VB_MIMALLOC_DIR. A static mimalloc cannot override malloc on
# Windows, so every project file is compiled with platform/win/malloc_mi.h
# (malloc and friends by their mi_ names; why, and what may not cross between
# the heaps, is said there) and every target links the library, so that no
# file allocates from one heap what another frees to the other. Without
# VB_MIMALLOC_DIR: the C runtime's allocator, everywhere.
set(VB_MIMALLOC_DIR "" CACHE PATH "mimalloc for mingw-w64 (scripts/mimalloc-win.sh), or empty")
set(VB_ALLOC_LIBS "")
if(VB_MIMALLOC_DIR)
  if(NOT EXISTS ${VB_MIMALLOC_DIR}/lib/libmimalloc-static.a)
    message(FATAL_ERROR "VB_MIMALLOC_DIR=${VB_MIMALLOC_DIR} has no lib/libmimalloc-static.a")
  endif()
  add_library(vb_mimalloc STATIC IMPORTED)
  set_target_properties(vb_mimalloc PROPERTIES
    IMPORTED_LOCATION ${VB_MIMALLOC_DIR}/lib/libmimalloc-static.a
    INTERFACE_LINK_LIBRARIES "psapi;shell32;user32;advapi32;bcrypt")
  include_directories(SYSTEM ${VB_MIMALLOC_DIR}/include)
  # SHELL: keeps CMake from merging this -include with compat.h's above.
  add_compile_options("SHELL:-include ${CMAKE_SOURCE_DIR}/platform/win/malloc_mi.h")
  add_compile_definitions(VB_MIMALLOC=1)
  link_libraries(vb_mimalloc)
  set(VB_ALLOC_LIBS vb_mimalloc)
endif()
# ---- the allocator: mimalloc (end) ----

include_directories(${CMAKE_SOURCE_DIR})
file(GLOB VB_CORE_SRC CONFIGURE_DEPENDS core/*.c)
# platform/*.c is shared with Linux (platform/gate.c) and calls only platform headers.
file(GLOB VB_PLATFORM_SRC CONFIGURE_DEPENDS platform/*.c platform/win/*.c)
# gcc for mingw-w64 checks format(printf) against msvcrt's printf, which lacks
# %zu; the calls themselves reach mingw-w64's own printf (see above), which has
# it. The Linux build checks these format strings; platform/win avoids %z.
set_source_files_properties(${VB_CORE_SRC} PROPERTIES COMPILE_OPTIONS -Wno-format)
add_library(vbcore STATIC ${VB_CORE_SRC} ${VB_PLATFORM_SRC})
target_compile_definitions(vbcore PUBLIC _GNU_SOURCE VB_VERSION="${PROJECT_VERSION}")
target_link_libraries(vbcore PUBLIC ws2_32 mswsock ntdll advapi32 iphlpapi ole32 oleaut32 wbemuuid)

# xxHash (cp's file hashes) has no mingw-w64 build in Debian; it is a
# header-only library with XXH_INLINE_ALL, so the host's header is copied
# into the build tree (never the host's /usr/include as a whole).
find_file(VB_XXHASH_H xxhash.h PATHS /usr/include NO_DEFAULT_PATH NO_CMAKE_FIND_ROOT_PATH)
if(NOT VB_XXHASH_H)
  message(FATAL_ERROR "xxhash.h not found in /usr/include (install libxxhash-dev)")
endif()
configure_file(${VB_XXHASH_H} ${CMAKE_BINARY_DIR}/xxhash/xxhash.h COPYONLY)

# exec and cp, both sides; exec/win/cp_fs.c is cp's file system on Windows
# (exec/cp_fs.c is its POSIX twin).
set(VB_WIN_EXEC_SRC exec/client.c exec/srv.c exec/msg.c exec/cp_cli.c exec/cp_srv.c
                    exec/cp_send.c exec/cp_recv.c exec/cp_msg.c exec/win/cp_fs.c)
add_library(vbexec STATIC ${VB_WIN_EXEC_SRC})
target_include_directories(vbexec PRIVATE ${CMAKE_BINARY_DIR}/xxhash)
target_compile_definitions(vbexec PRIVATE XXH_INLINE_ALL)
target_link_libraries(vbexec PUBLIC vbcore)

# The CLI: every subcommand builds; the lab front says it is Linux-only.
file(GLOB VB_CLI_SRC CONFIGURE_DEPENDS cmd/cli*.c)
set_source_files_properties(${VB_CLI_SRC} ${VB_WIN_EXEC_SRC} cmd/main_vmbusify.c PROPERTIES COMPILE_OPTIONS -Wno-format)
add_library(vbcli STATIC ${VB_CLI_SRC})
target_link_libraries(vbcli PUBLIC vbexec)
# The lab front (cli_lab.c) names these; on Windows it only says the lab is Linux-only.
target_compile_definitions(vbcli PRIVATE VB_LIBEXECDIR="libexec/vmbusify"
                                         VB_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
add_executable(vmbusify cmd/main_vmbusify.c)
add_executable(vmbusexec cmd/main_vmbusify.c)
foreach(exe vmbusify vmbusexec)
  target_link_libraries(${exe} PRIVATE vbcli ${VB_ALLOC_LIBS})
endforeach()
# proxy/ over platform/win/net.c. The guest's half: the proxy port (front,
# SOCKS and HTTP handshakes, UDP associations), the data path (pump) and the
# dialing end of TCP streams (tcp_srv, dial) with the VM's end of -R forwards
# (rfwd). The host's half, for vmbusifyd.exe: the egress policy, VM names, and
# the resolver: proxy/win/resolve.c runs getaddrinfo on the thread pool where
# Linux has c-ares (proxy/resolve.c; same header, proxy/resolve.h).
set(VB_WIN_PROXY_SRC proxy/front.c proxy/socks.c proxy/http.c proxy/pump.c proxy/tcp_msg.c
                     proxy/tcp_srv.c proxy/dial.c proxy/udp.c proxy/rfwd.c proxy/policy.c
                     proxy/vmname.c proxy/resolve_name.c proxy/win/resolve.c)
set_source_files_properties(${VB_WIN_PROXY_SRC} PROPERTIES COMPILE_OPTIONS -Wno-format)
add_library(vbproxy STATIC ${VB_WIN_PROXY_SRC})
target_link_libraries(vbproxy PUBLIC vbcore)
# The Windows guest's agent: the Linux agent's wiring (cmd/agent.c) without
# vnet (no TUN device on Windows yet). cmd/agent.c guards its uplink with a
# pthread mutex: mingw-w64's winpthreads, linked statically (-static above).
add_executable(vmbusify-agent cmd/main_vmbusify_agent_win.c cmd/agent.c)
set_source_files_properties(cmd/main_vmbusify_agent_win.c cmd/agent.c PROPERTIES COMPILE_OPTIONS -Wno-format)
target_link_libraries(vmbusify-agent PRIVATE vbproxy vbexec pthread ${VB_ALLOC_LIBS})

# The host daemon, vmbusifyd.exe: daemon/ over the host's half of proxy/, the
# main it shares with Linux (cmd/vmbusifyd.c) and its Windows main: defaults
# under %ProgramData% (its folder made Administrators' only, platform/win/acl.c),
# the Windows service and its registration, the event log
# (cmd/main_vmbusifyd_win.c over platform/win/service.c and eventlog.c;
# CommandLineToArgvW and SHGetKnownFolderPath are shell32's). vnet's host end:
# the router and its parts, over platform/win's Wintun TUN (tun.c, wintun.dll
# loaded at run time), IP Helper (netcfg.c) and WinNAT (nat.c).
set(VB_WIN_DAEMON_SRC daemon/daemon.c daemon/vm.c daemon/control.c daemon/proxy.c
                      daemon/forward.c vnet/lease.c vnet/router.c vnet/dns.c vnet/icmp.c
                      vnet/msg.c vnet/pkt.c cmd/vmbusifyd.c cmd/main_vmbusifyd_win.c)
set_source_files_properties(${VB_WIN_DAEMON_SRC} PROPERTIES COMPILE_OPTIONS -Wno-format)
add_executable(vmbusifyd ${VB_WIN_DAEMON_SRC})
# daemon/ guards its forwards with a pthread mutex (winpthreads, as the agent).
target_link_libraries(vmbusifyd PRIVATE vbproxy pthread shell32 ${VB_ALLOC_LIBS})

enable_testing()
if(NOT VB_TESTS)
  return()
endif()

# Debian has no mingw-w64 cmocka: tests/win/cmocka.h is the subset of its
# API that the tests use, so the same test sources build on both systems.
add_library(vbtest STATIC tests/win/cmocka.c)
target_include_directories(vbtest PUBLIC ${CMAKE_SOURCE_DIR}/tests/win)

# The unit tests of tests/unit that need no OS, listed (not globbed): most
# tests there drive Linux descriptors.
set(VB_WIN_UNIT_TESTS config frame session uri socks http_proxy policy vmname)
set(VB_WIN_TESTS "")
foreach(t ${VB_WIN_UNIT_TESTS})
  add_executable(test_${t} tests/unit/test_${t}.c)
  set_source_files_properties(tests/unit/test_${t}.c PROPERTIES COMPILE_OPTIONS -Wno-format)
  list(APPEND VB_WIN_TESTS test_${t})
endforeach()
# The Windows platform tests: the IOCP loop, transports, addresses, the
# daemon folder's ACLs, the event log source.
file(GLOB VB_WIN_PLATFORM_TESTS CONFIGURE_DEPENDS tests/win/test_*.c)
foreach(src ${VB_WIN_PLATFORM_TESTS})
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  list(APPEND VB_WIN_TESTS ${name})
endforeach()
foreach(name ${VB_WIN_TESTS})
  target_link_libraries(${name} PRIVATE vbproxy vbexec vbtest)
  target_compile_definitions(${name} PRIVATE VB_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
  add_test(NAME win/${name} COMMAND ${name})
  set_tests_properties(win/${name} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120 LABELS "unit;win")
endforeach()

# The Wintun relay (platform/win/tun.c) over a stand-in wintun.dll
# (tests/win/tun/fake_wintun.c): tun.c loads wintun.dll from the executable's
# directory only, so the DLL and this test get a directory of their own.
add_library(vb_fake_wintun SHARED tests/win/tun/fake_wintun.c)
set_target_properties(vb_fake_wintun PROPERTIES OUTPUT_NAME wintun PREFIX ""
                      RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/fake-wintun)
target_link_libraries(vb_fake_wintun PRIVATE iphlpapi)
add_executable(test_win_tun_relay tests/win/tun/test_win_tun_relay.c)
set_target_properties(test_win_tun_relay PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/fake-wintun)
target_link_libraries(test_win_tun_relay PRIVATE vbproxy vbexec vbtest)
add_dependencies(test_win_tun_relay vb_fake_wintun)
add_test(NAME win/test_win_tun_relay COMMAND test_win_tun_relay)
set_tests_properties(win/test_win_tun_relay PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120 LABELS "unit;win")

# Interoperability over tcp:// with a token (tests/win/interop.sh): cli is
# vmbusify.exe/vmbusexec.exe under Wine against the Linux agent, agent the
# Linux CLI against vmbusify-agent.exe under Wine, daemon vmbusifyd.exe under
# Wine dialing the Linux agent, with vmbusify.exe on its control pipe, its
# proxy port, forwards and the guest's egress, and its service (un)install.
# The script finds a Linux build through VB_LINUX_BUILD or the usual build
# directories, else skips. vb-wfetch.exe is the daemon mode's HTTP client
# inside Wine: the daemon's ports let in trusted Windows processes only.
add_executable(vb-wfetch tests/win/wfetch.c)
target_link_libraries(vb-wfetch PRIVATE ws2_32)
find_program(VB_BASH bash NO_CMAKE_FIND_ROOT_PATH)
if(VB_BASH)
  foreach(mode cli agent daemon)
    add_test(NAME win/interop_${mode}
             COMMAND ${VB_BASH} ${CMAKE_SOURCE_DIR}/tests/win/interop.sh ${mode} ${CMAKE_BINARY_DIR})
    set_tests_properties(win/interop_${mode} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300
                                                        LABELS "win;interop")
  endforeach()
endif()
