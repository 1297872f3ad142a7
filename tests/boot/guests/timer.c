/* Conformance: time and timers. The pvclock in shared_info is valid from the first instruction
 * and advances with real time; set_timer_op and SCHEDOP_block wake the vCPU through VIRQ_TIMER;
 * VCPUOP's timers, runstate area and vcpu_info placement as Linux uses them. */
#include "pages.h"
#include "pvclock.h"
#include "report.h"

static volatile struct pvk_shared_info shared __attribute__((aligned(4096)));
static volatile struct pvk_vcpu_runstate_info runstate;
static uint8_t vcpu_info_page[4096] __attribute__((aligned(4096)));
volatile uint64_t upcalls;

/* Acknowledges every event (selector and pending words) and returns through iret. */
__asm__(".text\n"
        "timer_callback:\n"
        "    popq %rcx\n"
        "    popq %r11\n"
        "    movb $0, shared(%rip)\n"
        "    movq $0, shared+8(%rip)\n"
        "    movq $0, shared+2048(%rip)\n"
        "    incq upcalls(%rip)\n"
        "    pushq $0\n"
        "    jmp pvk_hypercall_page + 23 * 32\n");
extern char timer_callback[];

static uint64_t now(void) { return pvclock_ns(&shared.vcpu_info[0].time); }

int pvk_main(const struct pvk_start_info *info)
{
    report_check(pvk_hypercall_update_va_mapping((uint64_t)&shared, info->shared_info | 0x23, PVK_UVMF_INVLPG) == 0,
                 "shared_info mapped");
    const volatile struct pvk_vcpu_time_info *time = &shared.vcpu_info[0].time;
    report_check(time->version % 2 == 0 && time->tsc_to_system_mul != 0, "pvclock valid at start");
    const uint64_t t0 = now();
    report_check(now() >= t0, "system time does not go back");

    struct pvk_evtchn_bind_virq bind = {.virq = PVK_VIRQ_TIMER, .vcpu = 0};
    report_check(pvk_evtchnop_bind_virq(&bind) == 0, "VIRQ_TIMER bound");
    report_check(pvk_hypercall_set_callbacks((uint64_t)timer_callback, 0, 0) == 0, "set_callbacks");

    /* Five sleeps of 10 ms: block until the single-shot deadline has passed (the periodic timer
     * may wake the vCPU earlier: it blocks again). */
    const uint64_t start = now();
    for (int sleep = 0; sleep < 5; ++sleep) {
        const uint64_t deadline = now() + 10000000;
        pvk_hypercall_set_timer_op((int64_t)deadline);
        while (now() < deadline)
            pvk_schedop_block();
    }
    const uint64_t elapsed = now() - start;
    report_check(elapsed >= 50000000 && elapsed < 150000000, "five 10 ms sleeps took 50 to 150 ms of system time");
    report_check(upcalls >= 5, "VIRQ_TIMER upcalls woke the vCPU");

    /* Just after a periodic tick, a 3 ms single-shot timer must wake the vCPU well before the
     * next tick (10 ms) would. */
    const uint64_t ticks = upcalls;
    while (upcalls == ticks)
        pvk_schedop_block();
    const uint64_t armed = now();
    pvk_hypercall_set_timer_op((int64_t)(armed + 3000000));
    pvk_schedop_block();
    const uint64_t woke = now() - armed;
    report_check(woke >= 3000000 && woke < 9000000, "a 3 ms single-shot timer woke the vCPU before the next tick");

    /* VCPUOP, as Linux: no periodic timer, single-shot timers, a runstate area. */
    report_check(pvk_hypercall_vcpu_op(PVK_VCPUOP_is_up, 0, 0) == 1 && pvk_hypercall_vcpu_op(PVK_VCPUOP_is_up, 1, 0) == -2,
                 "VCPUOP_is_up: vCPU 0 is up, vCPU 1 does not exist (-ENOENT)");
    report_check(pvk_hypercall_vcpu_op(PVK_VCPUOP_stop_periodic_timer, 0, 0) == 0, "VCPUOP_stop_periodic_timer");
    struct pvk_vcpu_register_runstate_memory_area area = {.addr.p = (uint64_t)&runstate};
    report_check(pvk_hypercall_vcpu_op(PVK_VCPUOP_register_runstate_memory_area, 0, &area) == 0 &&
                     runstate.state == PVK_RUNSTATE_running && runstate.time[PVK_RUNSTATE_blocked] > 0,
                 "the runstate area: running now, blocked before");
    const uint64_t blocked_before = runstate.time[PVK_RUNSTATE_blocked];
    const uint64_t upcalls_before = upcalls;
    struct pvk_vcpu_set_singleshot_timer past = {.timeout_abs_ns = now() - 1, .flags = PVK_VCPU_SSHOTTMR_future};
    report_check(pvk_hypercall_vcpu_op(PVK_VCPUOP_set_singleshot_timer, 0, &past) == -62,
                 "a past single-shot deadline with VCPU_SSHOTTMR_future is -ETIME");
    const uint64_t deadline = now() + 20000000;
    struct pvk_vcpu_set_singleshot_timer sleep = {.timeout_abs_ns = deadline, .flags = PVK_VCPU_SSHOTTMR_future};
    report_check(pvk_hypercall_vcpu_op(PVK_VCPUOP_set_singleshot_timer, 0, &sleep) == 0, "VCPUOP_set_singleshot_timer");
    pvk_schedop_block();
    report_check(now() >= deadline && upcalls == upcalls_before + 1,
                 "one upcall, at the deadline: the periodic timer is stopped");
    report_check(runstate.time[PVK_RUNSTATE_blocked] >= blocked_before + 15000000,
                 "the runstate area counts the time blocked");

    pages_init(info);
    shared.vcpu_info[0].evtchn_upcall_mask = 1;
    struct pvk_vcpu_register_vcpu_info placement = {.mfn = mfn_of(vcpu_info_page), .offset = 128};
    report_check(pvk_hypercall_vcpu_op(PVK_VCPUOP_register_vcpu_info, 0, &placement) == 0,
                 "VCPUOP_register_vcpu_info");
    volatile struct pvk_vcpu_info *moved = (volatile struct pvk_vcpu_info *)(vcpu_info_page + 128);
    report_check(moved->evtchn_upcall_mask == 1 && moved->time.tsc_to_system_mul == shared.vcpu_info[0].time.tsc_to_system_mul,
                 "the vcpu_info was copied to its new place");
    report_text("timer: done\n");
    return report_failures();
}
