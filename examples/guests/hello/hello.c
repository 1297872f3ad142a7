/* The smallest pvkit guest: print through the hypervisor's console and power off. */
#include <pvkit/guest.h>

int pvk_main(const struct pvk_start_info *start_info)
{
    static char greeting[] = "hello from a pvkit guest\n";
    (void)start_info;
    return pvk_consoleio_write(sizeof greeting - 1, greeting) < 0;
}
