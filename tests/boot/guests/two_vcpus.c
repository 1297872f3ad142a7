/* Conformance, two vCPUs of one domain: vCPU 0 brings vCPU 1 up from a vcpu_guest_context
 * (VCPUOP_initialise, VCPUOP_up) after the hypervisor refused hostile ones; each binds an IPI
 * port (EVTCHNOP_bind_ipi) and they exchange ROUNDS IPIs, each vCPU polling its own port; then
 * vCPU 1 goes down (VCPUOP_down) and vCPU 0 finds it offline, with time spent running. */
#include "events.h"
#include "pages.h"
#include "report.h"
#include "xs.h"

#define ROUNDS 100
#define SECOND 1000000000ull

static char second_stack[16384] __attribute__((aligned(16)));
static struct pvk_vcpu_guest_context context;  /* 5 KiB: not on the stack */

/* What vCPU 1 tells vCPU 0, through memory the two share. */
static volatile uint32_t second_port;      /* its IPI port, once bound */
static volatile int second_port_vcpu = -1; /* the vCPU EVTCHNOP_status says the port is bound to */
static volatile int second_answers;        /* IPIs it received and answered */
static uint32_t first_port;                /* vCPU 0's IPI port, bound before vCPU 1 starts */

static uint64_t now_ns(void) { return pvclock_ns(&events_shared.vcpu_info[0].time); }

/* vCPU 1, entered from the context vCPU 0 gave: rdi holds the argument it put there. */
static void __attribute__((noreturn, used)) second_vcpu_main(uint64_t rounds)
{
    struct pvk_evtchn_bind_ipi ipi = {.vcpu = 1};
    if (pvk_evtchnop_bind_ipi(&ipi) == 0) {
        struct pvk_evtchn_status status = {.dom = PVK_DOMID_SELF, .port = ipi.port};
        if (pvk_evtchnop_status(&status) == 0 && status.status == PVK_EVTCHNSTAT_ipi)
            second_port_vcpu = (int)status.vcpu;
        second_port = ipi.port;
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        events_send(first_port);
        for (uint64_t round = 0; round < rounds; ++round) {
            if (!events_wait(ipi.port, now_ns() + SECOND))
                break;
            ++second_answers;
            events_send(first_port);
        }
    }
    for (;;)
        pvk_vcpuop_down(1);
}

/* A context for vCPU 1: vCPU 0's page tables, its own stack, no GDT of its own. */
static void fill_context(const struct pvk_start_info *info)
{
    context = (struct pvk_vcpu_guest_context){0};
    context.flags = PVK_VGCF_in_kernel;
    context.user_regs.rip = (uint64_t)second_vcpu_main;
    context.user_regs.rsp = (uint64_t)(second_stack + sizeof second_stack) - 8; /* as after a call */
    context.user_regs.rdi = ROUNDS;
    context.user_regs.cs = PVK_FLAT_KERNEL_CS64;
    context.user_regs.ss = PVK_FLAT_KERNEL_SS;
    context.user_regs.rflags = 0x200;
    context.kernel_ss = PVK_FLAT_KERNEL_SS;
    context.kernel_sp = context.user_regs.rsp;
    context.ctrlreg[3] = mfn_of((const void *)info->pt_base) << 12;
}

static int refused(long result, long expected, const char *what)
{
    return report_check(result == expected && pvk_vcpuop_is_up(1) == 0, what);
}

int pvk_main(const struct pvk_start_info *info)
{
    pages_init(info);
    report_check(events_map_shared_info(info), "shared_info mapped");
    report_check(pvk_vcpuop_is_up(0) == 1 && pvk_vcpuop_is_up(1) == 0 && pvk_vcpuop_is_up(2) == -PVK_XEN_ENOENT,
                 "vCPU 0 is up, vCPU 1 down, no vCPU 2");
    report_check(pvk_vcpuop_up(1) == -PVK_XEN_EINVAL, "a vCPU never initialised cannot come up");

    fill_context(info);
    context.user_regs.rip = 0x0000800000000000ull;
    refused(pvk_vcpuop_initialise(1, &context), -PVK_XEN_EINVAL, "a non-canonical rip is refused");
    fill_context(info);
    context.ctrlreg[3] = mfn_of(second_stack) << 12;
    refused(pvk_vcpuop_initialise(1, &context), -PVK_XEN_EINVAL, "page tables that are not an L4 are refused");
    fill_context(info);
    context.flags = 0;
    refused(pvk_vcpuop_initialise(1, &context), -PVK_XEN_EINVAL, "user mode without user page tables is refused");
    fill_context(info);
    context.gdt_ents = 1;
    context.gdt_frames[0] = mfn_of(second_stack);
    refused(pvk_vcpuop_initialise(1, &context), -PVK_XEN_EINVAL, "a GDT on a writable page is refused");
    report_check(pvk_vcpuop_up(1) == -PVK_XEN_EINVAL, "after the refusals, vCPU 1 is still not initialised");

    struct pvk_evtchn_bind_ipi ipi = {.vcpu = 0};
    report_check(pvk_evtchnop_bind_ipi(&ipi) == 0, "vCPU 0 bound an IPI port");
    first_port = ipi.port;
    fill_context(info);
    report_check(pvk_vcpuop_initialise(1, &context) == 0, "vCPU 1 initialised from a vcpu_guest_context");
    report_check(pvk_vcpuop_initialise(1, &context) == -PVK_XEN_EEXIST, "initialised once only");
    report_check(pvk_vcpuop_is_up(1) == 0, "initialised, vCPU 1 is still down");
    report_check(pvk_vcpuop_up(1) == 0 && pvk_vcpuop_is_up(1) == 1, "vCPU 1 is up");

    report_check(events_wait(first_port, now_ns() + SECOND) && second_port != 0, "vCPU 1 runs and bound its IPI port");
    report_check(second_port_vcpu == 1, "its port is bound to vCPU 1");
    const uint64_t start = now_ns();
    int answered = 0;
    for (int round = 0; round < ROUNDS; ++round)
        answered += events_send(second_port) && events_wait(first_port, now_ns() + SECOND);
    const uint64_t elapsed = now_ns() - start;
    report_check(answered == ROUNDS && second_answers == ROUNDS, "100 IPIs each way between the two vCPUs");
    char mean[24];
    xs_decimal(elapsed / ROUNDS, mean);
    report_text("two_vcpus: mean IPI round trip ");
    report_text(mean);
    report_text(" ns\n");

    const uint64_t deadline = now_ns() + SECOND;
    while (pvk_vcpuop_is_up(1) == 1 && now_ns() < deadline)
        pvk_schedop_yield();
    struct pvk_vcpu_runstate_info runstate;
    report_check(pvk_vcpuop_is_up(1) == 0, "vCPU 1 went down");
    report_check(pvk_vcpuop_get_runstate_info(1, &runstate) == 0 && runstate.state == PVK_RUNSTATE_offline &&
                     runstate.time[PVK_RUNSTATE_running] > 0,
                 "vCPU 1's runstate: offline, after time running");
    report_check(pvk_vcpuop_up(1) == 0 && pvk_vcpuop_down(1) == 0, "up again and down again");
    return report_failures();
}
