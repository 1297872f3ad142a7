// Transactions: a root taken at the start, changed by the transaction's own requests only, and a
// commit that swaps it in.
//
// Conflicts are detected coarsely, as the first xenstored did: a commit of a transaction that
// changed something fails EAGAIN when anything at all was committed to the store since it
// started (Store::generation_ moved), whether or not it touched the same nodes. A transaction that
// changed nothing always commits: its reads saw one consistent snapshot. A commit that would take
// another domain over its byte quota (charges.cpp) fails ENOSPC. A transaction ends with
// TRANSACTION_END whatever its outcome. Its changes are logged (path, removal or not, the perms
// that decide who may see it) and fire their watches at commit, oldest first.
#include "internal.hpp"

namespace hv::xenstore::detail {

Result<std::uint32_t> StoreInternals::start_transaction(Connection& c) {
    Store& store = c.store_;
    if (!c.privileged_ && c.transaction_count_ >= store.limits_.transactions_per_domain)
        return Errc::enospc;
    const std::size_t bytes = store.memory_.block_size(sizeof(Transaction));
    if (!c.privileged_ && !within_quota(store, c.domain_, bytes))
        return Errc::enospc;
    auto* tx = allocate<Transaction>(store.memory_, sizeof(Transaction));
    if (tx == nullptr)
        return Errc::enomem;
    charge(store, c.domain_, static_cast<std::int64_t>(bytes));
    std::uint32_t id = c.next_transaction_id_;
    while (id == 0 || find_transaction(c, id) != nullptr)
        ++id;  // at most transaction_count_ ids are taken, so this ends
    c.next_transaction_id_ = id + 1;
    ::new (tx) Transaction{c.transactions_, id, c.domain_, store.root_, store.generation_, 0, false, nullptr, 0};
    reference(store.root_);
    c.transactions_ = tx;
    ++c.transaction_count_;
    return id;
}

Transaction* StoreInternals::find_transaction(Connection& c, std::uint32_t id) {
    for (Transaction* tx = c.transactions_; tx != nullptr; tx = tx->next)
        if (tx->id == id)
            return tx;
    return nullptr;
}

namespace {

void free_transaction(Store& store, Transaction* tx) {
    StoreMemory& memory = StoreInternals::memory_of(store);
    StoreInternals::drop_change_log(store, *tx);
    unreference(store, tx->root);
    StoreInternals::charge(store, tx->domain, -static_cast<std::int64_t>(memory.block_size(sizeof(Transaction))));
    tx->~Transaction();
    memory.release(tx, sizeof(Transaction));
}

}  // namespace

Result<void> StoreInternals::end_transaction(Connection& c, Transaction& tx, bool commit) {
    Store& store = c.store_;
    for (Transaction** link = &c.transactions_; *link != nullptr; link = &(*link)->next) {
        if (*link == &tx) {
            *link = tx.next;
            break;
        }
    }
    --c.transaction_count_;
    Result<void> result;
    if (commit && tx.change_count != 0) {
        if (tx.start_generation != store.generation_) {
            result = Errc::eagain;
        } else if (result = hand_over_copies(store, tx, c.privileged_); result) {
            Node* old_root = store.root_;
            store.root_ = tx.root;
            tx.root = old_root;  // dropped with the transaction below
            ++store.generation_;
            if (tx.foreign_changes) {
                recount(store);
            } else if (DomainRecord* own = record(store, c.domain_)) {
                own->nodes = static_cast<std::uint32_t>(static_cast<std::int64_t>(own->nodes) + tx.own_delta);
            }
            // The log is newest first: turn it around to fire in the order the changes were made.
            Change* oldest_first = nullptr;
            while (tx.changes != nullptr) {
                Change* change = tx.changes;
                tx.changes = change->next;
                change->next = oldest_first;
                oldest_first = change;
            }
            tx.changes = oldest_first;
            // A removal's watches below it are seen with the removed nodes' permissions: those of
            // the tree the transaction started from (no commit came since), now in tx.root.
            for (Change* change = tx.changes; change != nullptr; change = change->next) {
                const Node* removed = change->recursive ? find(View{&tx.root, nullptr}, change->path()) : nullptr;
                fire(store, change->path(), change->recursive, {change->perms(), change->perm_count}, removed);
            }
        }
    }
    free_transaction(store, &tx);
    return result;
}

void StoreInternals::drop_transactions(Connection& c) {
    drain(c.transactions_, [&](Transaction* tx) { free_transaction(c.store_, tx); });
    c.transaction_count_ = 0;
}

Result<void> StoreInternals::log_change(Store& store, Transaction& tx, std::string_view path, bool recursive,
                                        std::span<const Permission> perms) {
    if (tx.change_count >= store.limits_.changes_per_transaction)
        return Errc::enospc;
    const std::size_t bytes = Change::bytes_for(perms.size(), path.size());
    auto* change = allocate<Change>(store.memory_, bytes);
    if (change == nullptr)
        return Errc::enomem;
    charge(store, tx.domain, static_cast<std::int64_t>(store.memory_.block_size(bytes)));
    ::new (change) Change{tx.changes, static_cast<std::uint32_t>(path.size()), recursive,
                          static_cast<std::uint16_t>(perms.size())};
    for (std::size_t i = 0; i < perms.size(); ++i)
        ::new (change->perms() + i) Permission{perms[i]};
    std::memcpy(const_cast<char*>(change->path().data()), path.data(), path.size());
    tx.changes = change;
    ++tx.change_count;
    return {};
}

void StoreInternals::drop_change_log(Store& store, Transaction& tx) {
    StoreMemory& memory = store.memory_;
    drain(tx.changes, [&](Change* change) {
        const std::size_t bytes = change->bytes();
        charge(store, tx.domain, -static_cast<std::int64_t>(memory.block_size(bytes)));
        change->~Change();
        memory.release(change, bytes);
    });
    tx.change_count = 0;
}

}  // namespace hv::xenstore::detail
