/* inet_pton and inet_ntop: both systems have them, each in its own header. */
#ifndef VB_PLATFORM_INET_H
#define VB_PLATFORM_INET_H

#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h>
#else
#include <arpa/inet.h>
#endif

#endif
