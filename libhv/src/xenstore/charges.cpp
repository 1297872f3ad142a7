// Byte charges: who pays for each block of the StoreMemory, and the quota on it.
//
// Every block the store allocates is charged to one domain from its allocation until its release,
// for the bytes StoreMemory::block_size() says it takes (its size class), and never to another:
// - a node's block and its children array: outside a transaction, the node's owner (entry 0 of its
//   perms); inside one, the transaction's domain, whoever owns the node (the copies a transaction
//   makes are its own). A commit hands the copies over to their owners, as if the changes had been
//   made outside it; it fails ENOSPC, changing nothing, when that would take a domain other than
//   the transaction's own over its quota (unprivileged connections). A node records who pays for it
//   in Node::charged;
// - a watch, a transaction record and its change log: the connection's domain;
// - a queued watch event: the domain of the connection it waits in.
// The root "/" and the DomainRecords are the toolstack's and charged to nobody.
// DomainRecord::bytes sums what is charged to an introduced domain; blocks of a domain that is not
// (or no longer) introduced are counted again when it is introduced (Store::introduce).
// check_invariants() recomputes every record's bytes from the live blocks (tally_charges).
//
// The quota (Limits::bytes_per_domain) applies to unprivileged callers. A change works out, before
// allocating anything, what it will allocate and give back for each domain (tree.cpp's
// ChargePlan) and is refused with ENOSPC when one whose charge grows would go over its quota: so a
// refused request allocates nothing. Removals are never refused (they give back what no snapshot
// holds). A node that an open transaction's snapshot still holds when the committed tree lets go
// of it stays charged to whoever paid for it until that transaction ends, as its block stays.
// Watches over the quota are E2BIG, transactions ENOSPC, events are dropped and counted.
#include "internal.hpp"

namespace hv::xenstore::detail {
namespace {

// Visits every node of the trees rooted at `root` that no earlier walk of this pass marked (the
// trees share subtrees: a marked node's subtree was visited whole).
template <class F>
void visit_unmarked(const Node& node, F&& visit) {
    if (node.marked)
        return;
    node.marked = true;
    visit(node);
    for (std::uint32_t i = 0; i < node.child_count; ++i)
        visit_unmarked(*node.children[i], visit);
}

void clear_marks(const Node& node) {
    if (!node.marked)
        return;
    node.marked = false;
    for (std::uint32_t i = 0; i < node.child_count; ++i)
        clear_marks(*node.children[i]);
}

// Visits a committing transaction's own copies: the nodes of its tree only it holds. They hang
// together from its root down (a change copies the whole path above what it changes), each with
// the one reference of its parent; a node with more is shared with the committed tree.
template <class F>
void visit_copies(Node& node, F&& visit) {
    if (node.references != 1)
        return;
    visit(node);
    for (std::uint32_t i = 0; i < node.child_count; ++i)
        visit_copies(*node.children[i], visit);
}

void move_charge(Store& store, Node& node, DomId to) {
    const auto bytes = static_cast<std::int64_t>(
        node_charge(StoreInternals::memory_of(store), node.bytes(), node.child_count));
    StoreInternals::charge(store, node.charged, -bytes);
    StoreInternals::charge(store, to, bytes);
    node.charged = to;
}

}  // namespace

Result<void> StoreInternals::hand_over_copies(Store& store, Transaction& tx, bool privileged) {
    visit_copies(*tx.root, [&](Node& node) { move_charge(store, node, node.owner()); });
    bool over = false;
    visit_copies(*tx.root, [&](Node& node) {
        const DomainRecord* owner = record(store, node.owner());
        over = over || (node.owner() != tx.domain && owner != nullptr &&
                        owner->bytes > store.limits_.bytes_per_domain);
    });
    if (!over || privileged)
        return {};
    visit_copies(*tx.root, [&](Node& node) { move_charge(store, node, tx.domain); });
    return Errc::enospc;
}

void StoreInternals::charge(Store& store, DomId domain, std::int64_t bytes) {
    if (DomainRecord* record = StoreInternals::record(store, domain))
        record->bytes = static_cast<std::uint64_t>(static_cast<std::int64_t>(record->bytes) + bytes);
}

bool StoreInternals::within_quota(const Store& store, DomId domain, std::uint64_t bytes) {
    const DomainRecord* record = StoreInternals::record(store, domain);
    const std::uint64_t charged = record != nullptr ? record->bytes : 0;
    return charged + bytes <= store.limits_.bytes_per_domain;
}

std::uint64_t StoreInternals::tally_charges(const Store& store, DomId domain) {
    std::uint64_t bytes = 0;
    const StoreMemory& memory = store.memory_;
    const auto count_node = [&](const Node& node) {
        if (node.charged == domain)
            bytes += node_charge(memory, node.bytes(), node.child_count);
    };
    if (store.root_ != nullptr)
        visit_unmarked(*store.root_, count_node);
    for (const Connection* c = store.connections_; c != nullptr; c = c->next_)
        for (const Transaction* tx = c->transactions_; tx != nullptr; tx = tx->next)
            visit_unmarked(*tx->root, count_node);
    if (store.root_ != nullptr)
        clear_marks(*store.root_);
    for (const Connection* c = store.connections_; c != nullptr; c = c->next_) {
        for (const Transaction* tx = c->transactions_; tx != nullptr; tx = tx->next) {
            clear_marks(*tx->root);
            if (tx->domain != domain)
                continue;
            bytes += memory.block_size(sizeof(Transaction));
            for (const Change* change = tx->changes; change != nullptr; change = change->next)
                bytes += memory.block_size(change->bytes());
        }
        if (c->domain_ != domain)
            continue;
        for (const Watch* watch = c->watches_; watch != nullptr; watch = watch->next)
            bytes += memory.block_size(watch->bytes());
        for (const QueuedEvent* event = c->events_; event != nullptr; event = event->next)
            bytes += memory.block_size(sizeof(QueuedEvent) + event->length);
    }
    return bytes;
}

}  // namespace hv::xenstore::detail
