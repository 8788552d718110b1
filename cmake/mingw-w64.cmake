# Cross-compiling for 64-bit Windows with Debian's mingw-w64 (gcc-mingw-w64-x86-64,
# g++-mingw-w64-x86-64). Use: cmake -DCMAKE_TOOLCHAIN_FILE=cmake/mingw-w64.cmake,
# or scripts/build-win.sh. Tests run under Wine (wine64) when it is installed.
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)

set(VB_MINGW_TRIPLE x86_64-w64-mingw32)
set(CMAKE_C_COMPILER ${VB_MINGW_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${VB_MINGW_TRIPLE}-g++)
set(CMAKE_RC_COMPILER ${VB_MINGW_TRIPLE}-windres)

# Libraries and headers come from the mingw-w64 sysroot only; programs from the host.
set(CMAKE_FIND_ROOT_PATH /usr/${VB_MINGW_TRIPLE})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# CTest runs the .exe files through Wine. Debian's wine64 package installs its
# loader in /usr/lib/wine (the `wine` package would add /usr/bin/wine).
find_program(VB_WINE NAMES wine64 wine PATHS /usr/lib/wine NO_CMAKE_FIND_ROOT_PATH)
if(VB_WINE)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${VB_WINE})
endif()
