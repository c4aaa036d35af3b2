// Linux kernel AIO (io_setup/io_submit) through libaio; Debian ships no pkg-config file for it.
#include <stddef.h>
#include <sys/types.h>
#include <time.h>
#include <libaio.h>
