/* Conformance: an event sent to the domain's own vCPU reaches the event callback once events are
 * unmasked, with events masked inside it, and iret unmasks them again. */
#include "report.h"

/* shared_info, mapped over a page of our own: vcpu_info[0] starts it (evtchn_upcall_pending at
 * 0, evtchn_upcall_mask at 1, evtchn_pending_sel at 8), evtchn_pending[] is at 2048. */
static volatile uint8_t shared_page[4096] __attribute__((aligned(4096)));
volatile uint64_t upcalls, mask_inside, flags_saved;

/* The callback acknowledges everything (a real kernel would scan the selector and the pending
 * words), then returns with iret, which restores the mask from the saved IF. */
__asm__(".text\n"
        "event_callback:\n"
        "    popq %rcx\n"
        "    popq %r11\n"
        "    pushq %rax\n"
        "    movzbq shared_page+1(%rip), %rax\n"
        "    movq %rax, mask_inside(%rip)\n"
        "    movq 24(%rsp), %rax\n"
        "    movq %rax, flags_saved(%rip)\n"
        "    movb $0, shared_page(%rip)\n"
        "    movq $0, shared_page+8(%rip)\n"
        "    movq $0, shared_page+2048(%rip)\n"
        "    incq upcalls(%rip)\n"
        "    popq %rax\n"
        "    pushq $0\n"
        "    jmp pvk_hypercall_page + 23 * 32\n");
extern char event_callback[];

int pvk_main(const struct pvk_start_info *info)
{
    const uint64_t present_writable_accessed = 0x23;
    report_check(pvk_hypercall_update_va_mapping((uint64_t)shared_page, info->shared_info | present_writable_accessed,
                                                 PVK_UVMF_INVLPG) == 0,
                 "shared_info mapped with update_va_mapping");
    report_check(shared_page[1] == 1, "events start masked");
    report_check(pvk_hypercall_set_callbacks((uint64_t)event_callback, 0, 0) == 0, "set_callbacks");

    struct pvk_evtchn_bind_ipi bind = {.vcpu = 0};
    report_check(pvk_evtchnop_bind_ipi(&bind) == 0 && bind.port != 0, "an IPI port bound to vCPU 0");
    struct pvk_evtchn_send send = {.port = bind.port};
    report_check(pvk_evtchnop_send(&send) == 0, "sent while masked");
    report_check(upcalls == 0 && shared_page[0] == 1, "masked: pending, no upcall");

    shared_page[1] = 0;
    /* The pending upcall is delivered on the way back from the next hypercall. */
    report_check(pvk_hypercall_xen_version(PVK_XENVER_version, 0) > 0, "a hypercall after unmasking");
    report_check(upcalls == 1, "the event callback ran once");
    report_check(mask_inside == 1, "events were masked inside the callback");
    report_check((flags_saved & 0x200) != 0, "the saved IF says events were unmasked");
    report_check(shared_page[1] == 0, "iret unmasked events again");

    report_check(pvk_evtchnop_send(&send) == 0 && upcalls == 2, "a send while unmasked upcalls at once");
    report_text("event_upcall: done\n");
    return report_failures();
}
