// The granting side of a v1 grant table (guest/grants.hpp): entries and their flags protocol.
#include <guest/grants.hpp>

namespace pvkit::guest {

namespace {
constexpr std::uint16_t busy_flags = abi::GTF_reading | abi::GTF_writing;

std::uint16_t load_flags(const abi::grant_entry_v1& entry) { return __atomic_load_n(&entry.flags, __ATOMIC_ACQUIRE); }
}  // namespace

GrantError GrantTable::init(std::span<abi::grant_entry_v1> entries, std::span<std::uint64_t> bitmap) {
    if (bitmap.size() < bitmap_words(entries.size()))
        return GrantError::bitmap_too_small;
    entries_ = entries;
    bitmap_ = bitmap;
    for (auto& word : bitmap_)
        word = 0;
    free_ = entries.size() > first_ref ? entries.size() - first_ref : 0;
    next_ = first_ref;
    return GrantError::none;
}

void GrantTable::set_handed_out(GrantRef ref, bool value) {
    const std::uint64_t bit = std::uint64_t{1} << (ref % 64);
    bitmap_[ref / 64] = value ? bitmap_[ref / 64] | bit : bitmap_[ref / 64] & ~bit;
}

GrantResult GrantTable::grant_access(abi::domid_t domid, std::uint64_t frame, bool readonly) {
    if (free_ == 0 || frame > UINT32_MAX)  // a v1 entry holds a 32-bit frame number
        return {0, free_ == 0 ? GrantError::no_free_entry : GrantError::bad_ref};
    GrantRef ref = next_;
    while (handed_out(ref))  // free_ > 0: some ref at or after first_ref is free
        ref = ref + 1 < entries_.size() ? ref + 1 : first_ref;
    next_ = ref + 1 < entries_.size() ? ref + 1 : first_ref;
    set_handed_out(ref, true);
    --free_;
    abi::grant_entry_v1& entry = entries_[ref];
    __atomic_store_n(&entry.domid, domid, __ATOMIC_RELAXED);
    __atomic_store_n(&entry.frame, static_cast<std::uint32_t>(frame), __ATOMIC_RELAXED);
    const std::uint16_t flags = abi::GTF_permit_access | (readonly ? abi::GTF_readonly : 0);
    __atomic_store_n(&entry.flags, flags, __ATOMIC_RELEASE);
    return {ref, GrantError::none};
}

bool GrantTable::in_use(GrantRef ref) const {
    return ref < entries_.size() && (load_flags(entries_[ref]) & busy_flags) != 0;
}

GrantError GrantTable::end_access(GrantRef ref) {
    if (ref < first_ref || ref >= entries_.size() || !handed_out(ref))
        return GrantError::bad_ref;
    abi::grant_entry_v1& entry = entries_[ref];
    std::uint16_t flags = load_flags(entry);
    do {
        if ((flags & busy_flags) != 0)
            return GrantError::in_use;
        // On failure `flags` is reloaded with what the hypervisor wrote, and checked again.
    } while (!__atomic_compare_exchange_n(&entry.flags, &flags, std::uint16_t{0}, false, __ATOMIC_ACQ_REL,
                                          __ATOMIC_ACQUIRE));
    set_handed_out(ref, false);
    ++free_;
    return GrantError::none;
}

}  // namespace pvkit::guest
