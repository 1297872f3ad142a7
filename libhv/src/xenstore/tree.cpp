// The tree operations: WRITE, MKDIR, RM, SET_PERMS and lookups, on the committed tree or on a
// transaction's. Each one decodes first (walks the path, checks permissions and quotas, logs the
// change of a transaction), then builds the new path of nodes (internal.hpp: the tree is
// persistent) and only then swaps the root, adjusts the accounting and fires watches. Building can
// only fail for memory, and then it drops what it built: nothing has changed.
//
// Permission rules (as xenstored): reading needs read access to the node; writing or removing it,
// write access; SET_PERMS, being its owner; an unprivileged caller may not give a node away
// (EPERM). Creating nodes needs write access to the nearest existing ancestor; new nodes take that
// ancestor's permissions, except that a node an unprivileged domain creates is owned by it. A
// missing node reads as ENOENT when its nearest existing ancestor is readable, else EACCES, so a
// domain learns nothing of what it may not read.
#include "internal.hpp"

namespace hv::xenstore::detail {
namespace {

// The nodes along a path: chain[0] is the root, chain[i] the node of component i, for i up to
// `found`; names[i] is component i, for i up to `depth`.
struct Walk {
    std::array<Node*, max_path_depth + 1> chain;
    std::array<std::string_view, max_path_depth + 1> names;
    std::size_t depth = 0;
    std::size_t found = 0;
    Node* target() const { return found == depth ? chain[depth] : nullptr; }
    Node* nearest() const { return chain[found]; }
};

void walk(Node* root, std::string_view path, Walk& w) {
    w.chain[0] = root;
    w.depth = 0;
    w.found = 0;
    std::size_t position = 0;
    while (path.size() > 1 && position < path.size())
        w.names[++w.depth] = next_component(path, position);
    for (std::size_t i = 1; i <= w.depth; ++i) {
        std::uint32_t index;
        Node* child = find_child(*w.chain[i - 1], w.names[i], index);
        if (child == nullptr)
            break;
        w.chain[i] = child;
        w.found = i;
    }
}

// How a copy's children differ from the original's.
struct ChildEdit {
    enum Kind { keep, replace, insert, erase } kind = keep;
    std::uint32_t index = 0;
    Node* child = nullptr;  // the new child (replace, insert): the copy takes over its reference
};

// Who pays for a node a change makes (charges.cpp): outside a transaction its owner, inside one
// the transaction's domain.
DomId payer(const View& view, std::span<const Permission> perms) {
    return view.transaction != nullptr ? view.transaction->domain : perms[0].domain;
}

// A copy of `from` with another value, perms and children; the kept children gain a reference.
// nullptr when out of memory; the edit's child is then still the caller's.
Node* copy_node(Store& store, const View& view, std::uint64_t generation, const Node& from, std::string_view value,
                std::span<const Permission> perms, ChildEdit edit) {
    StoreMemory& memory = StoreInternals::memory_of(store);
    std::uint32_t count = from.child_count;
    if (edit.kind == ChildEdit::insert)
        ++count;
    if (edit.kind == ChildEdit::erase)
        --count;
    Node** children = nullptr;
    if (count != 0) {
        children = allocate<Node*>(memory, count * sizeof(Node*));
        if (children == nullptr)
            return nullptr;
    }
    Node* copy = make_node(store, payer(view, perms), generation, from.name(), value, perms, children, count);
    if (copy == nullptr) {
        if (children != nullptr)
            memory.release(children, count * sizeof(Node*));
        return nullptr;
    }
    std::uint32_t out = 0;
    for (std::uint32_t i = 0; i <= from.child_count; ++i) {
        if (edit.kind == ChildEdit::insert && i == edit.index)
            children[out++] = edit.child;
        if (i == from.child_count)
            break;
        if ((edit.kind == ChildEdit::replace || edit.kind == ChildEdit::erase) && i == edit.index) {
            if (edit.kind == ChildEdit::replace)
                children[out++] = edit.child;
            continue;
        }
        reference(from.children[i]);
        children[out++] = from.children[i];
    }
    return copy;
}

// Copies the path above `level`, with `replacement` as the new node at that level (nullptr:
// the node at that level is removed). Returns the new root, or nullptr when out of memory (the
// replacement is then dropped).
Node* rebuild_path(Store& store, const View& view, std::uint64_t& generation, const Walk& w, std::size_t level,
                   Node* replacement) {
    Node* below = replacement;
    for (std::size_t i = level; i-- > 0;) {
        const Node& old = *w.chain[i];
        ChildEdit edit;
        std::uint32_t index = 0;
        const bool existing = find_child(old, w.names[i + 1], index) != nullptr;
        edit.index = index;
        edit.child = below;
        edit.kind = !existing ? ChildEdit::insert : below == nullptr ? ChildEdit::erase : ChildEdit::replace;
        Node* copy = copy_node(store, view, ++generation, old, old.value(), old.perm_list(), edit);
        if (copy == nullptr) {
            if (below != nullptr)
                unreference(store, below);
            return nullptr;
        }
        below = copy;
    }
    return below;
}

// Nodes for components found+1 .. depth, each with `perms` and the last with `value`; the top one
// is returned (nullptr when out of memory, nothing kept).
Node* build_missing(Store& store, const View& view, std::uint64_t& generation, const Walk& w,
                    std::span<const Permission> perms, std::span<const Permission> last_perms, std::string_view value) {
    StoreMemory& memory = StoreInternals::memory_of(store);
    Node* below = make_node(store, payer(view, last_perms), ++generation, w.names[w.depth], value, last_perms, nullptr, 0);
    for (std::size_t i = w.depth - 1; below != nullptr && i > w.found; --i) {
        Node** children = allocate<Node*>(memory, sizeof(Node*));
        Node* node = children == nullptr
                         ? nullptr
                         : make_node(store, payer(view, perms), ++generation, w.names[i], {}, perms, children, 1);
        if (node == nullptr) {
            if (children != nullptr)
                memory.release(children, sizeof(Node*));
            unreference(store, below);
            return nullptr;
        }
        children[0] = below;
        below = node;
    }
    return below;
}

// The error for a node that is missing: ENOENT, or EACCES when its nearest ancestor is unreadable.
Errc missing(const Caller& caller, const Walk& w) {
    return may_read(caller, w.nearest()->perm_list()) ? Errc::enoent : Errc::eacces;
}

// Adjusts the node accounting for `count` nodes of `owner` appearing (or going, negative).
void account(Store& store, const Caller& caller, const View& view, DomId owner, std::int64_t count) {
    if (view.transaction != nullptr) {
        if (owner == caller.domain)
            view.transaction->own_delta += count;
        else
            view.transaction->foreign_changes = true;
        return;
    }
    if (DomainRecord* record = StoreInternals::record(store, owner))
        record->nodes = static_cast<std::uint32_t>(static_cast<std::int64_t>(record->nodes) + count);
}

// Nodes the caller owns in this view, for its quota.
std::int64_t owned_in_view(const Store& store, const Caller& caller, const View& view) {
    const DomainRecord* record = StoreInternals::record(store, caller.domain);
    const std::int64_t committed = record != nullptr ? record->nodes : 0;
    return committed + (view.transaction != nullptr ? view.transaction->own_delta : 0);
}

// What a change will allocate and give back, per domain, worked out before it allocates anything
// (charges.cpp). Entries are made for the domains that pay for new blocks (at most one per level
// of the path, plus the new nodes' and the log's); blocks given back only lower those.
class ChargePlan {
public:
    void charge(DomId domain, std::size_t bytes) {
        for (std::size_t i = 0; i < count_; ++i) {
            if (entries_[i].domain == domain) {
                entries_[i].bytes += static_cast<std::int64_t>(bytes);
                return;
            }
        }
        entries_[count_++] = {domain, static_cast<std::int64_t>(bytes)};
    }
    void give_back(DomId domain, std::size_t bytes) {
        for (std::size_t i = 0; i < count_; ++i)
            if (entries_[i].domain == domain)
                entries_[i].bytes -= static_cast<std::int64_t>(bytes);
    }
    // ENOSPC when an unprivileged caller's change would take a domain whose charge grows over its
    // quota.
    Result<void> check(const Store& store, const Caller& caller) const {
        if (caller.privileged)
            return {};
        for (std::size_t i = 0; i < count_; ++i)
            if (entries_[i].bytes > 0 &&
                !StoreInternals::within_quota(store, entries_[i].domain, static_cast<std::uint64_t>(entries_[i].bytes)))
                return Errc::enospc;
        return {};
    }

private:
    struct Entry {
        DomId domain{0};
        std::int64_t bytes = 0;
    };
    std::array<Entry, max_path_depth + 4> entries_{};
    std::size_t count_ = 0;
};

// The copies rebuild_path(w, level) makes of chain[0..level-1]; the one at level-1 gains a child
// when `inserting`.
void plan_copies(ChargePlan& plan, const StoreMemory& memory, const View& view, const Walk& w, std::size_t level,
                 bool inserting) {
    for (std::size_t i = 0; i < level; ++i) {
        const Node& old = *w.chain[i];
        const std::uint32_t children = old.child_count + (inserting && i + 1 == level ? 1 : 0);
        plan.charge(payer(view, old.perm_list()), node_charge(memory, old.bytes(), children));
    }
}

// The log entry a change in a transaction adds (finish()).
void plan_log(ChargePlan& plan, const StoreMemory& memory, const View& view, std::string_view path,
              std::size_t perm_count) {
    if (view.transaction != nullptr)
        plan.charge(view.transaction->domain, memory.block_size(Change::bytes_for(perm_count, path.size())));
}

// The old nodes chain[0..last] that the change gives back when it swaps the root: those that no
// other tree holds (one reference each, from the root down).
void plan_release(ChargePlan& plan, const StoreMemory& memory, const Walk& w, std::size_t last) {
    for (std::size_t i = 0; i <= last; ++i) {
        const Node& old = *w.chain[i];
        if (old.references != 1)
            return;
        plan.give_back(old.charged, node_charge(memory, old.bytes(), old.child_count));
    }
}

}  // namespace

const Node* StoreInternals::find(const View& view, std::string_view path) {
    Walk w;
    walk(*view.root, path, w);
    return w.target();
}

Result<const Node*> StoreInternals::readable(Store&, const Caller& caller, const View& view, std::string_view path) {
    Walk w;
    walk(*view.root, path, w);
    const Node* node = w.target();
    if (node == nullptr)
        return missing(caller, w);
    if (!may_read(caller, node->perm_list()))
        return Errc::eacces;
    return node;
}

namespace {

// Finishes a change whose new tree is built (`new_root`, nullptr when building ran out of memory):
// logs it in a transaction (which may fail, dropping the new tree), adjusts the accounting, swaps
// the root, bumps the generation and fires the watches (a transaction's fire at commit), and
// drops the old root last, as `perms` and what `accounting` walks may live in it.
template <class F>
Result<void> finish(Store& store, std::uint64_t& generation, const View& view, Node* new_root, std::string_view path,
                    bool recursive, std::span<const Permission> perms, F&& accounting, const Node* removed = nullptr) {
    if (new_root == nullptr)
        return Errc::enomem;
    if (view.transaction != nullptr) {
        if (auto logged = StoreInternals::log_change(store, *view.transaction, path, recursive, perms); !logged) {
            unreference(store, new_root);
            return logged;
        }
    }
    accounting();
    Node* old_root = *view.root;
    *view.root = new_root;
    if (view.transaction == nullptr) {
        ++generation;
        StoreInternals::fire(store, path, recursive, perms, removed);
    }
    unreference(store, old_root);
    return {};
}

}  // namespace

Result<void> StoreInternals::write(Store& store, const Caller& caller, const View& view, std::string_view path,
                                   const std::string_view* value) {
    const StoreMemory& memory = store.memory_;
    std::uint64_t& generation = store.node_generation_;
    Walk w;
    walk(*view.root, path, w);
    Node* target = w.target();
    const std::string_view data = value != nullptr ? *value : std::string_view{};
    if (target != nullptr) {
        if (!may_write(caller, target->perm_list()))
            return Errc::eacces;
        if (value == nullptr)
            return {};  // MKDIR of a node that exists: nothing to do, no watch fires
        if (!caller.privileged && data.size() > store.limits_.value_size)
            return Errc::enospc;
        ChargePlan plan;
        plan.charge(payer(view, target->perm_list()),
                    node_charge(memory, node_bytes(target->perm_count, target->name_length, data.size()),
                                target->child_count));
        plan_copies(plan, memory, view, w, w.depth, false);
        plan_log(plan, memory, view, path, target->perm_count);
        plan_release(plan, memory, w, w.depth);
        if (auto allowed = plan.check(store, caller); !allowed)
            return allowed;
        Node* copy = copy_node(store, view, ++generation, *target, data, target->perm_list(), {});
        Node* root = copy == nullptr ? nullptr : rebuild_path(store, view, generation, w, w.depth, copy);
        return finish(store, store.generation_, view, root, path, false, target->perm_list(), [] {});
    }
    const Node& ancestor = *w.nearest();
    if (!may_write(caller, ancestor.perm_list()))
        return Errc::eacces;
    std::array<Permission, max_perms_per_node> perms;
    const std::size_t perm_count = ancestor.perm_count;
    for (std::size_t i = 0; i < perm_count; ++i)
        perms[i] = ancestor.perms()[i];
    if (!caller.privileged)
        perms[0].domain = caller.domain;  // unprivileged domains own what they create
    const std::span<const Permission> new_perms{perms.data(), perm_count};
    const std::size_t created = w.depth - w.found;
    if (!caller.privileged) {
        if (owned_in_view(store, caller, view) + static_cast<std::int64_t>(created) > store.limits_.nodes_per_domain)
            return Errc::enospc;
        if (data.size() > store.limits_.value_size)
            return Errc::enospc;
    }
    ChargePlan plan;
    plan.charge(payer(view, new_perms), node_charge(memory, node_bytes(perm_count, w.names[w.depth].size(), data.size()), 0));
    for (std::size_t i = w.found + 1; i < w.depth; ++i)
        plan.charge(payer(view, new_perms), node_charge(memory, node_bytes(perm_count, w.names[i].size(), 0), 1));
    plan_copies(plan, memory, view, w, w.found + 1, true);
    plan_log(plan, memory, view, path, perm_count);
    plan_release(plan, memory, w, w.found);
    if (auto allowed = plan.check(store, caller); !allowed)
        return allowed;
    Node* top = build_missing(store, view, generation, w, new_perms, new_perms, data);
    Node* root = top == nullptr ? nullptr : rebuild_path(store, view, generation, w, w.found + 1, top);
    return finish(store, store.generation_, view, root, path, false, new_perms, [&] {
        account(store, caller, view, new_perms[0].domain, static_cast<std::int64_t>(created));
    });
}

Result<void> StoreInternals::remove(Store& store, const Caller& caller, const View& view, std::string_view path) {
    if (path == "/")
        return Errc::einval;
    Walk w;
    walk(*view.root, path, w);
    Node* target = w.target();
    if (target == nullptr)
        return missing(caller, w);
    if (!may_write(caller, target->perm_list()))
        return Errc::eacces;
    // Never refused for the byte quota: what it copies is the path above what it gives back.
    Node* root = rebuild_path(store, view, store.node_generation_, w, w.depth, nullptr);
    return finish(
        store, store.generation_, view, root, path, true, target->perm_list(),
        [&] { for_each_node(*target, [&](const Node& node) { account(store, caller, view, node.owner(), -1); }); },
        target);
}

Result<void> StoreInternals::set_perms(Store& store, const Caller& caller, const View& view, std::string_view path,
                                       std::span<const Permission> perms) {
    Walk w;
    walk(*view.root, path, w);
    Node* target = w.target();
    if (target == nullptr)
        return missing(caller, w);
    if (!caller.privileged && caller.domain != target->owner())
        return Errc::eacces;
    if (perms.empty())
        return Errc::einval;
    if (perms.size() > max_perms_per_node || perms.size() > store.limits_.perms_per_node)
        return Errc::enospc;
    if (!caller.privileged && perms[0].domain != target->owner())
        return Errc::eperm;
    const StoreMemory& memory = store.memory_;
    ChargePlan plan;
    plan.charge(payer(view, perms),
                node_charge(memory, node_bytes(perms.size(), target->name_length, target->value_length),
                            target->child_count));
    plan_copies(plan, memory, view, w, w.depth, false);
    plan_log(plan, memory, view, path, perms.size());
    plan_release(plan, memory, w, w.depth);
    if (auto allowed = plan.check(store, caller); !allowed)
        return allowed;
    Node* copy = copy_node(store, view, ++store.node_generation_, *target, target->value(), perms, {});
    Node* root = copy == nullptr ? nullptr : rebuild_path(store, view, store.node_generation_, w, w.depth, copy);
    return finish(store, store.generation_, view, root, path, false, perms, [&] {
        if (perms[0].domain != target->owner()) {
            account(store, caller, view, target->owner(), -1);
            account(store, caller, view, perms[0].domain, 1);
        }
    });
}

Result<void> StoreInternals::ensure_node(Store& store, std::string_view path, std::span<const Permission> perms) {
    const Caller toolstack{DomId{0}, true};
    const View view = committed(store);
    Walk w;
    walk(*view.root, path, w);
    if (w.target() != nullptr)
        return set_perms(store, toolstack, view, path, perms);
    const Node& ancestor = *w.nearest();
    Node* top = build_missing(store, view, store.node_generation_, w, ancestor.perm_list(), perms, {});
    Node* root = top == nullptr ? nullptr : rebuild_path(store, view, store.node_generation_, w, w.found + 1, top);
    return finish(store, store.generation_, view, root, path, false, perms, [&] {
        account(store, toolstack, view, ancestor.owner(), static_cast<std::int64_t>(w.depth - w.found - 1));
        account(store, toolstack, view, perms[0].domain, 1);
    });
}

DomainRecord* StoreInternals::record(const Store& store, DomId domain) {
    for (DomainRecord* record = store.domains_; record != nullptr; record = record->next)
        if (record->id == domain)
            return record;
    return nullptr;
}

void StoreInternals::recount(Store& store) {
    for (DomainRecord* record = store.domains_; record != nullptr; record = record->next)
        record->nodes = 0;
    if (store.root_ == nullptr)
        return;
    for_each_node(*store.root_, [&](const Node& node) {
        if (DomainRecord* record = StoreInternals::record(store, node.owner()))
            ++record->nodes;
    });
}

}  // namespace hv::xenstore::detail
