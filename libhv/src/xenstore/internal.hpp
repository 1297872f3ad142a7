// The xenstore's insides, shared by its source files only.
//
// The tree is persistent
// ----------------------
// A node is never changed once another node or a root points to it. A change builds new copies
// of the nodes on the path from the root to what changed, sharing every other subtree with the old
// tree, and then swaps the root. So:
// - a transaction is a root taken at its start (one reference, no copying): its reads see the
//   store as it was, its writes rewrite its own root only, and a commit swaps it in as the store's
//   root (the store cannot have changed since, or the commit fails EAGAIN);
// - a change that runs out of memory half-way drops the copies it built and the old tree is as it
//   was, so every operation is whole or nothing.
// Node::references counts the roots and parent nodes that point to a node. A node whose count
// drops to zero gives back its block and children array, and drops one reference of each child.
// Store::check_invariants() verifies that children are sorted and unique and that no node is
// referenced more often than its count says.
//
// Layout: one block per node, [Node][Permission x perm_count][name][value], plus one array of
// child pointers sorted by name (nullptr when there are none). The root's name is empty.
//
// Accounting: a DomainRecord per introduced domain counts the nodes it owns in the committed tree.
// Changes to the committed tree adjust it node by node. A transaction keeps the delta of its own
// domain (for its quota checks) and whether it touched anyone else's nodes; a commit applies the
// delta, or recounts every record from the new tree when other domains' counts moved.
//
// Byte charges (charges.cpp explains): every block is charged to one domain from its allocation to
// its release, and DomainRecord::bytes sums what is charged to an introduced domain.
#pragma once

#include <cstring>
#include <new>

#include <hv/xenstore.hpp>

namespace hv::xenstore::detail {

struct Node {
    std::uint32_t references;
    std::uint16_t value_length;  // at most XENSTORE_PAYLOAD_MAX
    std::uint16_t name_length;
    std::uint8_t perm_count;     // 1 .. max_perms_per_node
    mutable bool marked;         // false but during a walk of every tree (charges.cpp)
    DomId charged;               // who pays for this block and its children array
    std::uint32_t child_count;
    std::uint64_t generation;  // new for every copy: DIRECTORY_PART's gencnt
    Node** children;

    Permission* perms() { return reinterpret_cast<Permission*>(this + 1); }
    const Permission* perms() const { return reinterpret_cast<const Permission*>(this + 1); }
    std::span<const Permission> perm_list() const { return {perms(), perm_count}; }
    std::string_view name() const {
        return {reinterpret_cast<const char*>(perms() + perm_count), name_length};
    }
    std::string_view value() const { return {name().data() + name_length, value_length}; }
    DomId owner() const { return perms()[0].domain; }
    std::size_t bytes() const {
        return sizeof(Node) + perm_count * sizeof(Permission) + name_length + value_length;
    }
};
static_assert(alignof(Node) <= 16 && sizeof(Node) % alignof(Permission) == 0 && sizeof(Node) == 32);
static_assert(abi::XENSTORE_PAYLOAD_MAX <= UINT16_MAX && max_perms_per_node <= UINT8_MAX);

// One change made inside a transaction: the watches it fires at commit.
struct Change {
    Change* next;
    std::uint32_t path_length;
    bool recursive;  // a removal: watches below the path fire too
    std::uint16_t perm_count;
    Permission* perms() { return reinterpret_cast<Permission*>(this + 1); }
    std::string_view path() const {
        return {reinterpret_cast<const char*>(reinterpret_cast<const Permission*>(this + 1) + perm_count),
                path_length};
    }
    static std::size_t bytes_for(std::size_t perm_count, std::size_t path_length) {
        return sizeof(Change) + perm_count * sizeof(Permission) + path_length;
    }
    std::size_t bytes() const { return bytes_for(perm_count, path_length); }
};

struct Transaction {
    Transaction* next;
    std::uint32_t id;
    DomId domain;                    // its connection's: pays for it, its log and its copies
    Node* root;                      // its own view; one reference held
    std::uint64_t start_generation;  // Store::generation_ when it started
    std::int64_t own_delta;          // nodes its domain gained (or lost, negative) in it
    bool foreign_changes;            // it created or removed nodes of another owner
    Change* changes;                 // newest first
    std::uint32_t change_count;
};

struct Watch {
    Watch* next;
    std::uint16_t path_length;   // absolute (a relative watch is stored made absolute)
    std::uint16_t token_length;
    std::uint16_t relative_skip;  // bytes of "/local/domain/<id>/" cut from event paths; 0: absolute
    std::string_view path() const { return {reinterpret_cast<const char*>(this + 1), path_length}; }
    std::string_view token() const { return {path().data() + path_length, token_length}; }
    std::size_t bytes() const { return sizeof(Watch) + path_length + token_length; }
};

struct DomainRecord {
    DomainRecord* next;
    DomId id;
    std::uint32_t nodes;
    std::uint64_t bytes;  // charged to it (charges.cpp)
};

struct QueuedEvent {
    QueuedEvent* next;
    std::uint32_t length;  // header and payload
    char* bytes() { return reinterpret_cast<char*>(this + 1); }
};

// Who asks. Privileged callers pass every permission check and no quota applies to them.
struct Caller {
    DomId domain;
    bool privileged;
};

// The tree a request works on: the store's committed one, or a transaction's.
struct View {
    Node** root;
    Transaction* transaction;  // nullptr: the committed tree
};

// string_view's find and substr would pull memchr and throwing range checks into a freestanding
// build; these need only the bytes and never throw. find_byte returns text.size() when absent.
inline std::size_t find_byte(std::string_view text, char byte, std::size_t from = 0) {
    for (std::size_t i = from; i < text.size(); ++i)
        if (text[i] == byte)
            return i;
    return text.size();
}
inline std::string_view slice(std::string_view text, std::size_t from, std::size_t length = SIZE_MAX) {
    from = from < text.size() ? from : text.size();
    length = length < text.size() - from ? length : text.size() - from;
    return {text.data() + from, length};
}

// Empties a singly linked list, giving each element to `release` (which frees it).
template <class T, class F>
void drain(T*& head, F&& release) {
    while (head != nullptr) {
        T* element = head;
        head = element->next;
        release(element);
    }
}

// ---- memory (node.cpp)
template <class T>
T* allocate(StoreMemory& memory, std::size_t bytes) {
    return static_cast<T*>(memory.allocate(bytes));
}
// Bytes of a node's block with these lengths.
inline std::size_t node_bytes(std::size_t perm_count, std::size_t name_length, std::size_t value_length) {
    return sizeof(Node) + perm_count * sizeof(Permission) + name_length + value_length;
}
// What a node of `bytes` with `child_count` children is charged: its block and its children array,
// each as the memory rounds it.
inline std::size_t node_charge(const StoreMemory& memory, std::size_t bytes, std::uint32_t child_count) {
    return memory.block_size(bytes) + (child_count != 0 ? memory.block_size(child_count * sizeof(Node*)) : 0);
}
// A new node with one reference, owning `children` (an array of child_count pointers whose
// references it takes over), charged to `charged`; nullptr when out of memory, and then `children`
// is still the caller's.
Node* make_node(Store& store, DomId charged, std::uint64_t generation, std::string_view name, std::string_view value,
                std::span<const Permission> perms, Node** children, std::uint32_t child_count);
void reference(Node* node);
void free_event(Connection& c, QueuedEvent* event);  // watches.cpp
// Drops a reference; the last one releases the node (and its charge) and drops its children's.
void unreference(Store& store, Node* node);
// The child called `name`, or nullptr; `index` gets where it is or would be inserted.
Node* find_child(const Node& node, std::string_view name, std::uint32_t& index);
// Visits every node of a subtree (recursion bounded by max_path_depth).
template <class F>
void for_each_node(const Node& node, F&& visit) {
    visit(node);
    for (std::uint32_t i = 0; i < node.child_count; ++i)
        for_each_node(*node.children[i], visit);
}
Access access_for(const Caller& caller, std::span<const Permission> perms);
inline bool may_read(const Caller& c, std::span<const Permission> p) {
    return (static_cast<unsigned>(access_for(c, p)) & static_cast<unsigned>(Access::read)) != 0;
}
inline bool may_write(const Caller& c, std::span<const Permission> p) {
    return (static_cast<unsigned>(access_for(c, p)) & static_cast<unsigned>(Access::write)) != 0;
}

// ---- paths (paths.cpp)
// Checks an absolute path: "/" or "/c/c..." with components of [A-Za-z0-9-_@], no empty one,
// at most XENSTORE_ABS_PATH_MAX bytes and max_path_depth components.
bool valid_absolute_path(std::string_view path);
// Number of components; "/" has none.
std::size_t path_depth(std::string_view path);
// The component after `position` (which points at a '/'), and moves position to the next '/'.
std::string_view next_component(std::string_view path, std::size_t& position);
// "/a/b" is below "/a" and below "/"; a path is not below itself.
bool strictly_below(std::string_view path, std::string_view ancestor);
inline bool at_or_below(std::string_view path, std::string_view ancestor) {
    return path == ancestor || strictly_below(path, ancestor);
}
// "/local/domain/<id>" into `into` (at least 24 bytes); returns its length.
std::size_t domain_path(DomId domain, char* into);
// Decimal text of a number into `into` (at least 20 bytes); returns its length.
std::size_t format_decimal(std::uint64_t value, char* into);
// A decimal number with no sign, no spaces and no leading junk, at most `max`.
bool parse_decimal(std::string_view text, std::uint64_t max, std::uint64_t& value);
// "b0", "r5", "w1", "n3" -> a Permission.
bool parse_permission(std::string_view text, Permission& perm);
// 'b', 'r', 'w', 'n'.
char access_letter(Access access);

// ---- the tree operations (tree.cpp); every one is whole or nothing.
struct StoreInternals {
    static Store& store_of(Connection& c) { return c.store_; }
    static StoreMemory& memory_of(Store& store) { return store.memory_; }

    // charges.cpp: adds (or, negative, takes back) bytes charged to a domain; only introduced
    // domains keep a count.
    static void charge(Store& store, DomId domain, std::int64_t bytes);
    // Whether an unprivileged request may add `bytes` to the domain's charge.
    static bool within_quota(const Store& store, DomId domain, std::uint64_t bytes);
    // The bytes of every live block charged to `domain`, counted from the blocks themselves (the
    // trees of the store and of every open transaction, each node once; watches, transactions,
    // change logs, queued events).
    static std::uint64_t tally_charges(const Store& store, DomId domain);
    // A committing transaction's copies, charged to its domain, become their owners' (unless that
    // takes another domain over its quota, when nothing changes and it is ENOSPC).
    static Result<void> hand_over_copies(Store& store, Transaction& tx, bool privileged);
    // The node at an absolute path in a view, or nullptr.
    static const Node* find(const View& view, std::string_view path);
    // The node for reading: ENOENT, or EACCES when the caller may not read it (or, when it is
    // missing, may not read its nearest existing ancestor).
    static Result<const Node*> readable(Store& store, const Caller& caller, const View& view, std::string_view path);
    // WRITE (value) and MKDIR (no value): creates missing parents. Fires watches or logs them.
    static Result<void> write(Store& store, const Caller& caller, const View& view, std::string_view path,
                              const std::string_view* value);
    static Result<void> remove(Store& store, const Caller& caller, const View& view, std::string_view path);
    static Result<void> set_perms(Store& store, const Caller& caller, const View& view, std::string_view path,
                                  std::span<const Permission> perms);
    // Makes a node exist with exactly these perms (introduce's home directory).
    static Result<void> ensure_node(Store& store, std::string_view path, std::span<const Permission> perms);

    static DomainRecord* record(const Store& store, DomId domain);
    static void recount(Store& store);
    static View committed(Store& store) { return {&store.root_, nullptr}; }
    // The toolstack's lookups: EINVAL for a bad path, ENOMEM for a store not ready, ENOENT.
    static Result<const Node*> toolstack_find(const Store& store, std::string_view path);

    // watches.cpp: queues WATCH_EVENTs for a change at `path` (`recursive`: a removal, which
    // also fires the watches below it), to every watcher allowed to read a node with `perms`. A
    // watch below a removed path fires for a watcher who could read the node it watched, as it
    // was in `removed` (the subtree taken, still alive), or its nearest ancestor that existed;
    // without `removed`, `perms` decide for those too.
    static void fire(Store& store, std::string_view path, bool recursive, std::span<const Permission> perms,
                     const Node* removed = nullptr);
    // The special events "@introduceDomain" / "@releaseDomain", for privileged watchers.
    static void fire_special(Store& store, std::string_view event);

    // transactions.cpp
    static Result<std::uint32_t> start_transaction(Connection& c);
    static Result<void> end_transaction(Connection& c, Transaction& tx, bool commit);
    static Transaction* find_transaction(Connection& c, std::uint32_t id);
    static void drop_transactions(Connection& c);
    static Result<void> log_change(Store& store, Transaction& tx, std::string_view path, bool recursive,
                                   std::span<const Permission> perms);
    static void drop_change_log(Store& store, Transaction& tx);

    // watches.cpp
    static Result<void> add_watch(Connection& c, std::string_view path, std::string_view token,
                                  std::size_t relative_skip);
    static Result<void> remove_watch(Connection& c, std::string_view path, std::string_view token);
    static void drop_watches(Connection& c);
    static void queue_event(Connection& c, std::string_view path, std::string_view token);
    static void drop_events(Connection& c);
};

// The server side of a Connection (connection.cpp, requests.cpp).
struct ConnectionInternals {
    // Answers the complete request in c.request_: fills c.reply_ and sets c.reply_length_.
    static void answer(Connection& c);
    // Moves what fits of the reply and the queued events into the rsp ring; returns the bytes.
    static std::uint32_t write_output(Connection& c, std::uint32_t space);
};

}  // namespace hv::xenstore::detail
