/*
 * Grant tables, C API (guest/grants.hpp): granting our frames to another domain, mapping and
 * copying theirs. The table is set up on first use (one frame, refs 8..511).
 */
#ifndef PVKIT_GNTTAB_H
#define PVKIT_GNTTAB_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Lets `domid` use machine frame `frame`; the ref, or negative: -1 no table or no free entry, -2
 * a frame a v1 entry cannot hold. */
long pvk_grant_access(uint16_t domid, uint64_t frame, int readonly);
/* 0 when withdrawn; -3 while the grantee still maps it (GTF_reading/writing), -2 for a bad ref. */
int pvk_end_access(uint32_t ref);
int pvk_grant_in_use(uint32_t ref);

struct pvk_grant_mapping {
    void *address;
    uint32_t handle;
};
/* Maps another domain's grant at a page of ours; GNTST_okay (0) or a GNTST_* error. */
int pvk_gnttab_map(uint16_t domid, uint32_t ref, int readonly, struct pvk_grant_mapping *mapping);
int pvk_gnttab_unmap(const struct pvk_grant_mapping *mapping);
/* GNTTABOP_copy to or from a granted page (our side inside one page); a GNTST_* status. */
int pvk_gnttab_copy_to(uint16_t domid, uint32_t ref, uint16_t offset, const void *source, uint16_t length);
int pvk_gnttab_copy_from(uint16_t domid, uint32_t ref, uint16_t offset, void *destination, uint16_t length);

#ifdef __cplusplus
}
#endif
#endif
