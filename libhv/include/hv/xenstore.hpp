// The xenstore: a tree of nodes with permissions, watches and transactions, and its server for
// the shared store ring of io/xs_wire.h (xenstore_domain_interface).
//
// Two parts:
// - Store holds the tree, the introduced domains and the per-domain accounting. The embedder calls
//   it directly as the control domain's toolstack (no permission checks). All of its memory comes
//   from a StoreMemory the embedder gives it: there is no global state and no operator new.
// - Connection serves one domain's store page. It keeps a request being reassembled, one reply
//   and a bounded queue of watch events, so a guest may split requests and a full response ring
//   costs nothing but waiting.
// Nothing here locks: the embedder serializes every call on one Store and its Connections.
// docs/xenstore.md lists the semantics and what differs from xenstored.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include <hv/core.hpp>

namespace hv::xenstore {

namespace abi = pvkit::abi;

// The embedder's memory for nodes, values, watches, transactions and queued events.
class StoreMemory {
public:
    // A block of `bytes` bytes, 16-byte aligned; nullptr when out of memory (the request then
    // fails with ENOMEM and nothing has changed).
    virtual void* allocate(std::size_t bytes) = 0;
    // Gives back a block from allocate(), with the size it was allocated with.
    virtual void release(void* block, std::size_t bytes) = 0;
    // The bytes a block of `bytes` really takes (its size class): what the store charges a domain
    // for it (Limits::bytes_per_domain). The default is the 16-byte rounding every block gets.
    virtual std::size_t block_size(std::size_t bytes) const { return (bytes + 15) / 16 * 16; }

protected:
    ~StoreMemory() = default;
};

// What a domain may do to a node, as the letters of a permission string: n, r, w, b.
enum class Access : std::uint8_t { none = 0, read = 1, write = 2, both = 3 };

// One entry of a node's permission list. Entry 0 names the owner (who may do everything) and gives
// the access of every domain not listed; entries 1.. give one domain's access.
struct Permission {
    DomId domain{0};
    Access access = Access::none;
    constexpr bool operator==(const Permission&) const = default;
};

// Per-domain quotas, applied to unprivileged callers as xenstored applies its own (defaults are
// cxenstored's). A request over one fails with the error named, changing nothing.
struct Limits {
    std::uint32_t nodes_per_domain = 1000;       // nodes a domain owns: ENOSPC
    std::uint32_t value_size = 2048;             // bytes of one node's value: ENOSPC
    std::uint32_t watches_per_domain = 128;      // E2BIG
    std::uint32_t transactions_per_domain = 10;  // open at once: ENOSPC
    std::uint32_t perms_per_node = 5;            // entries of a permission list, for everyone: ENOSPC
    std::uint32_t changes_per_transaction = 1024;  // write/mkdir/rm/set_perms in one: ENOSPC
    std::uint32_t events_per_connection = 256;   // queued watch events; more are dropped
    // Bytes of StoreMemory blocks charged to the domain (as block_size() rounds them): the nodes it
    // owns, its watches, its transactions and their private copies, its queued events. Over it:
    // ENOSPC (a watch: E2BIG; an event: dropped). 64 KiB is the node quota's worth of the smallest
    // node blocks (1000 x 64 B), about ten times what a domU with a few devices holds; it is what
    // an embedder must be able to give every domain at once (docs/xenstore.md).
    std::uint32_t bytes_per_domain = 64 * 1024;
};

// The deepest path accepted ("/a/b" has depth 2): deeper paths are EINVAL. It bounds the work and
// stack of every walk down the tree; real stores go 8 deep.
inline constexpr std::size_t max_path_depth = 64;
// Permission lists longer than this are refused whatever the Limits say.
inline constexpr std::size_t max_perms_per_node = 64;

class Store;
class Connection;

namespace detail {
struct Node;
struct Watch;
struct Transaction;
struct DomainRecord;
struct QueuedEvent;
struct StoreInternals;
struct ConnectionInternals;
}  // namespace detail

class Store {
public:
    // Allocates the root node "/" (owned by domain 0, no access for others); ready() is false when
    // even that failed, and every operation then fails with ENOMEM.
    explicit Store(StoreMemory& memory, Limits limits = {});
    // Every Connection on this store must have been destroyed first.
    ~Store();
    Store(const Store&) = delete;
    Store& operator=(const Store&) = delete;

    bool ready() const { return root_ != nullptr; }
    const Limits& limits() const { return limits_; }

    // Toolstack side, no permission checks, absolute paths only, never inside a transaction.
    // introduce: records the domain (EEXIST if it is), makes /local/domain/<id> exist owned by it
    // with no access for others, and fires "@introduceDomain".
    Result<void> introduce(DomId domain);
    // release: removes /local/domain/<id>, drops the watches and transactions of the domain's
    // connections (they stay attached), forgets the domain and fires "@releaseDomain". ENOENT if
    // the domain was not introduced.
    Result<void> release(DomId domain);
    bool introduced(DomId domain) const;

    Result<void> write(std::string_view path, std::string_view value);
    Result<void> mkdir(std::string_view path);
    // Removes the node and everything below; EINVAL for "/"; ENOENT when missing.
    Result<void> rm(std::string_view path);
    // Copies up to value.size() bytes of the node's value; returns the value's whole length.
    Result<std::size_t> read(std::string_view path, std::span<char> value) const;
    Result<void> set_perms(std::string_view path, std::span<const Permission> perms);
    // Copies up to perms.size() entries; returns how many the node has.
    Result<std::size_t> get_perms(std::string_view path, std::span<Permission> perms) const;
    // Number of children, or the error.
    Result<std::size_t> children(std::string_view path) const;

    // Nodes owned by an introduced domain, as counted against its quota (0 for others).
    std::uint32_t nodes_owned(DomId domain) const;
    // Bytes of blocks charged to an introduced domain (0 for others): Limits::bytes_per_domain.
    std::uint64_t bytes_charged(DomId domain) const;
    // Bumped by every committed change; transactions compare it to detect conflicts.
    std::uint64_t generation() const { return generation_; }
    // Recomputes the accounting from the tree and checks the tree's shape (sorted, unique
    // children; reference counts at least the references seen) and the byte charges from every
    // live block (the trees of the store and of open transactions, watches, events); false on any
    // mismatch.
    bool check_invariants() const;

private:
    friend struct detail::StoreInternals;
    friend struct detail::ConnectionInternals;
    friend class Connection;

    StoreMemory& memory_;
    Limits limits_;
    detail::Node* root_ = nullptr;
    std::uint64_t generation_ = 1;
    std::uint64_t node_generation_ = 0;  // for DIRECTORY_PART's gencnt
    detail::DomainRecord* domains_ = nullptr;
    Connection* connections_ = nullptr;  // every attached Connection, for firing watches
};

// What a Connection::service pass did, and what its caller must do.
struct [[nodiscard]] ServiceResult {
    bool notify = false;           // signal the domain on its store event channel
    std::uint32_t consumed = 0;    // request bytes taken (req_cons moved by as much)
    std::uint32_t produced = 0;    // response bytes written (rsp_prod moved by as much)
    std::uint32_t requests = 0;    // requests answered in this pass
    bool broken = false;           // the ring is broken (now or earlier): nothing was done
};

// One domain's connection: serves its xenstore_domain_interface page, which the embedder maps for
// the object's lifetime. The server owns req_cons and rsp_prod and keeps its own copies, taken
// from the page at construction; req_prod and rsp_cons are read once per pass. Indexes that claim
// more than a ring's bytes break the connection for good (connection.cpp explains).
class Connection {
public:
    Connection(Store& store, DomId domain, bool privileged, abi::xenstore_domain_interface& page);
    // Drops its watches, open transactions and queued events.
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    // Call when the domain signals the store event channel, and whenever pending_output() is true
    // (watch events fired by another connection or by the toolstack wait here until then).
    ServiceResult service();
    // Watch events or a reply not yet fully written to the rsp ring.
    bool pending_output() const;

    bool broken() const { return broken_; }
    DomId domain() const { return domain_; }
    bool privileged() const { return privileged_; }
    std::uint32_t watch_count() const { return watch_count_; }
    std::uint32_t transaction_count() const { return transaction_count_; }
    std::uint32_t queued_events() const { return event_count_; }
    // Events not delivered: queue full, out of memory, or longer than XENSTORE_PAYLOAD_MAX.
    std::uint64_t dropped_events() const { return dropped_events_; }

private:
    friend class Store;
    friend struct detail::StoreInternals;
    friend struct detail::ConnectionInternals;

    static constexpr std::size_t header_size = sizeof(abi::xsd_sockmsg);
    static constexpr std::size_t message_capacity = header_size + abi::XENSTORE_PAYLOAD_MAX;

    Store& store_;
    DomId domain_;
    bool privileged_;
    abi::xenstore_domain_interface& page_;
    Connection* next_ = nullptr;  // in the store's list
    Connection* prev_ = nullptr;
    abi::XENSTORE_RING_IDX req_cons_;
    abi::XENSTORE_RING_IDX rsp_prod_;
    bool broken_ = false;

    // The request being reassembled: header then payload; skip_ bytes of an oversized payload are
    // still to be discarded.
    std::array<char, message_capacity> request_{};
    std::uint32_t request_length_ = 0;
    std::uint32_t skip_ = 0;
    // The reply to the last request, until it is all in the rsp ring.
    std::array<char, message_capacity> reply_{};
    std::uint32_t reply_length_ = 0;
    std::uint32_t reply_sent_ = 0;
    // Watch events, oldest first; event_sent_ bytes of the first are already in the ring (a
    // message half-written is finished before any other starts).
    detail::QueuedEvent* events_ = nullptr;
    detail::QueuedEvent* last_event_ = nullptr;
    std::uint32_t event_count_ = 0;
    std::uint32_t event_sent_ = 0;
    std::uint64_t dropped_events_ = 0;

    detail::Watch* watches_ = nullptr;
    std::uint32_t watch_count_ = 0;
    detail::Transaction* transactions_ = nullptr;
    std::uint32_t transaction_count_ = 0;
    std::uint32_t next_transaction_id_ = 1;

    // Scratch for a path made absolute (the domain's home + a relative path).
    std::array<char, abi::XENSTORE_ABS_PATH_MAX + 1> path_{};
};

}  // namespace hv::xenstore
