# The Windows build (issue 7), included by CMakeLists.txt when cross-compiling
# with cmake/mingw-w64.cmake: the OS-free core over platform/win, the unit
# tests that are OS-free and the Windows platform tests (tests/win), which
# CTest runs under Wine. exec/, proxy/, vnet/, daemon/ and cmd/ are Linux-only
# so far, and so are the benchmarks.

# Windows 10 APIs (AF_HYPERV, CancelIoEx, GetQueuedCompletionStatusEx);
# mingw-w64's own printf, which knows %zu and %lld.
add_compile_definitions(_WIN32_WINNT=0x0A00 WIN32_LEAN_AND_MEAN __USE_MINGW_ANSI_STDIO=1)
# The errno values mingw-w64 lacks, for every file (see the header).
add_compile_options(-include ${CMAKE_SOURCE_DIR}/platform/win/compat.h)
# No runtime DLLs beside the .exe files: libgcc and friends are linked in.
add_link_options(-static)

# Debian packages neither mimalloc nor jemalloc for mingw-w64: Windows
# binaries use the C runtime's allocator.
set(VB_ALLOC_LIBS "")

include_directories(${CMAKE_SOURCE_DIR})
file(GLOB VB_CORE_SRC CONFIGURE_DEPENDS core/*.c)
file(GLOB VB_PLATFORM_SRC CONFIGURE_DEPENDS platform/win/*.c)
# gcc for mingw-w64 checks format(printf) against msvcrt's printf, which lacks
# %zu; the calls themselves reach mingw-w64's own printf (see above), which has
# it. The Linux build checks these format strings; platform/win avoids %z.
set_source_files_properties(${VB_CORE_SRC} PROPERTIES COMPILE_OPTIONS -Wno-format)
add_library(vbcore STATIC ${VB_CORE_SRC} ${VB_PLATFORM_SRC})
target_compile_definitions(vbcore PUBLIC _GNU_SOURCE VB_VERSION="${PROJECT_VERSION}")
target_link_libraries(vbcore PUBLIC ws2_32 mswsock ntdll advapi32)

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
set(VB_WIN_UNIT_TESTS config frame session uri)
set(VB_WIN_TESTS "")
foreach(t ${VB_WIN_UNIT_TESTS})
  add_executable(test_${t} tests/unit/test_${t}.c)
  set_source_files_properties(tests/unit/test_${t}.c PROPERTIES COMPILE_OPTIONS -Wno-format)
  list(APPEND VB_WIN_TESTS test_${t})
endforeach()
# The Windows platform tests: the IOCP loop, transports, addresses.
file(GLOB VB_WIN_PLATFORM_TESTS CONFIGURE_DEPENDS tests/win/test_*.c)
foreach(src ${VB_WIN_PLATFORM_TESTS})
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  list(APPEND VB_WIN_TESTS ${name})
endforeach()
foreach(name ${VB_WIN_TESTS})
  target_link_libraries(${name} PRIVATE vbcore vbtest)
  target_compile_definitions(${name} PRIVATE VB_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
  add_test(NAME win/${name} COMMAND ${name})
  set_tests_properties(win/${name} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120 LABELS "unit;win")
endforeach()
