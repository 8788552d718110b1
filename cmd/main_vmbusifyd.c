/* vmbusifyd: the host daemon on Linux. Its life is cmd/vmbusifyd.c; here are the defaults. */
#include "core/config.h"
#include "cmd/vmbusifyd.h"
#include "platform/sys.h"

int main(int argc, char **argv)
{
	static const struct vmbusifyd_defaults def = {
	    .config = "/etc/vmbusify/vmbusifyd.conf",
	    .control = CONFIG_DEFAULT_CONTROL,
	    .state_dir = CONFIG_DEFAULT_STATE_DIR,
	};

	sys_std_fds_open();
	return vmbusifyd_main(argc, argv, &def);
}
