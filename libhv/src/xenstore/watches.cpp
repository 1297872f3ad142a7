// Watches and the WATCH_EVENTs they queue.
//
// A change at path P fires every watch whose path W is P or above it, with P as the event's path;
// a removal also fires the watches below P, with their own path W (what was removed contains
// them). A relative watch gets event paths relative to its domain's home. An event goes only to a
// connection that may read the node (with the node's perms before a removal), and the special
// events "@introduceDomain" and "@releaseDomain" only to privileged connections, as xenstored does
// by default since XSA-115.
//
// A connection queues at most Limits::events_per_connection events; more, events that cannot get
// memory or would take an unprivileged domain over its byte quota (they are charged to it), and
// events longer than XENSTORE_PAYLOAD_MAX are dropped and counted (dropped_events()).
#include "internal.hpp"

namespace hv::xenstore::detail {
namespace {

Watch* find_watch(Watch** watches, std::string_view path, std::string_view token, Watch*** link_out) {
    for (Watch** link = watches; *link != nullptr; link = &(*link)->next) {
        if ((*link)->path() == path && (*link)->token() == token) {
            if (link_out != nullptr)
                *link_out = link;
            return *link;
        }
    }
    return nullptr;
}

void free_watch(Connection& c, Watch* watch) {
    Store& store = StoreInternals::store_of(c);
    StoreMemory& memory = StoreInternals::memory_of(store);
    const std::size_t bytes = watch->bytes();
    StoreInternals::charge(store, c.domain(), -static_cast<std::int64_t>(memory.block_size(bytes)));
    watch->~Watch();
    memory.release(watch, bytes);
}

}  // namespace

void free_event(Connection& c, QueuedEvent* event) {
    Store& store = StoreInternals::store_of(c);
    StoreMemory& memory = StoreInternals::memory_of(store);
    const std::size_t bytes = sizeof(QueuedEvent) + event->length;
    StoreInternals::charge(store, c.domain(), -static_cast<std::int64_t>(memory.block_size(bytes)));
    event->~QueuedEvent();
    memory.release(event, bytes);
}

Result<void> StoreInternals::add_watch(Connection& c, std::string_view path, std::string_view token,
                                       std::size_t relative_skip) {
    Store& store = c.store_;
    if (find_watch(&c.watches_, path, token, nullptr) != nullptr)
        return Errc::eexist;
    if (!c.privileged_ && c.watch_count_ >= store.limits_.watches_per_domain)
        return Errc::e2big;
    const std::size_t bytes = sizeof(Watch) + path.size() + token.size();
    const std::size_t charged = store.memory_.block_size(bytes);
    if (!c.privileged_ && !within_quota(store, c.domain_, charged))
        return Errc::e2big;
    auto* watch = allocate<Watch>(store.memory_, bytes);
    if (watch == nullptr)
        return Errc::enomem;
    charge(store, c.domain_, static_cast<std::int64_t>(charged));
    ::new (watch) Watch{c.watches_, static_cast<std::uint16_t>(path.size()), static_cast<std::uint16_t>(token.size()),
                        static_cast<std::uint16_t>(relative_skip)};
    char* text = const_cast<char*>(watch->path().data());
    std::memcpy(text, path.data(), path.size());
    if (!token.empty())
        std::memcpy(text + path.size(), token.data(), token.size());
    c.watches_ = watch;
    ++c.watch_count_;
    return {};
}

Result<void> StoreInternals::remove_watch(Connection& c, std::string_view path, std::string_view token) {
    Watch** link = nullptr;
    Watch* watch = find_watch(&c.watches_, path, token, &link);
    if (watch == nullptr)
        return Errc::enoent;
    *link = watch->next;
    free_watch(c, watch);
    --c.watch_count_;
    return {};
}

void StoreInternals::drop_watches(Connection& c) {
    drain(c.watches_, [&](Watch* watch) { free_watch(c, watch); });
    c.watch_count_ = 0;
}

namespace {

// The permissions of the node at `watched`, below `path`, in `removed` (the node that was at
// `path`), or of its nearest ancestor there: what the removal of `watched` is seen with, as
// xenstored fires each removed node with its own permissions.
std::span<const Permission> removed_perms(const Node& removed, std::string_view path, std::string_view watched) {
    const Node* node = &removed;
    std::string_view rest = slice(watched, path.size() + 1);
    while (!rest.empty()) {
        std::size_t end = 0;
        while (end < rest.size() && rest[end] != '/')
            ++end;
        std::uint32_t index = 0;
        const Node* child = find_child(*node, slice(rest, 0, end), index);
        if (child == nullptr)
            break;
        node = child;
        rest = end < rest.size() ? slice(rest, end + 1) : std::string_view{};
    }
    return node->perm_list();
}

}  // namespace

void StoreInternals::fire(Store& store, std::string_view path, bool recursive, std::span<const Permission> perms,
                          const Node* removed) {
    for (Connection* c = store.connections_; c != nullptr; c = c->next_) {
        const Caller caller{c->domain_, c->privileged_};
        const bool reads_path = may_read(caller, perms);
        for (const Watch* watch = c->watches_; watch != nullptr; watch = watch->next) {
            const std::string_view watched = watch->path();
            if (watched[0] == '@')
                continue;
            std::string_view event;
            if (at_or_below(path, watched) && reads_path)
                event = path;
            else if (recursive && strictly_below(watched, path) &&
                     may_read(caller, removed != nullptr ? removed_perms(*removed, path, watched) : perms))
                event = watched;
            else
                continue;
            queue_event(*c, slice(event, watch->relative_skip), watch->token());
        }
    }
}

void StoreInternals::fire_special(Store& store, std::string_view event) {
    for (Connection* c = store.connections_; c != nullptr; c = c->next_) {
        if (!c->privileged_)
            continue;
        for (const Watch* watch = c->watches_; watch != nullptr; watch = watch->next)
            if (watch->path() == event)
                queue_event(*c, event, watch->token());
    }
}

void StoreInternals::queue_event(Connection& c, std::string_view path, std::string_view token) {
    const std::size_t payload = path.size() + 1 + token.size() + 1;
    if (payload > abi::XENSTORE_PAYLOAD_MAX || c.event_count_ >= c.store_.limits_.events_per_connection) {
        ++c.dropped_events_;
        return;
    }
    const std::size_t length = Connection::header_size + payload;
    Store& store = c.store_;
    const std::size_t charged = store.memory_.block_size(sizeof(QueuedEvent) + length);
    auto* event = c.privileged_ || within_quota(store, c.domain_, charged)
                      ? allocate<QueuedEvent>(store.memory_, sizeof(QueuedEvent) + length)
                      : nullptr;
    if (event == nullptr) {
        ++c.dropped_events_;
        return;
    }
    charge(store, c.domain_, static_cast<std::int64_t>(charged));
    ::new (event) QueuedEvent{nullptr, static_cast<std::uint32_t>(length)};
    const abi::xsd_sockmsg header{abi::XS_WATCH_EVENT, 0, 0, static_cast<std::uint32_t>(payload)};
    char* bytes = event->bytes();
    std::memcpy(bytes, &header, sizeof(header));
    bytes += sizeof(header);
    std::memcpy(bytes, path.data(), path.size());
    bytes[path.size()] = '\0';
    if (!token.empty())
        std::memcpy(bytes + path.size() + 1, token.data(), token.size());
    bytes[path.size() + 1 + token.size()] = '\0';
    if (c.last_event_ != nullptr)
        c.last_event_->next = event;
    else
        c.events_ = event;
    c.last_event_ = event;
    ++c.event_count_;
}

void StoreInternals::drop_events(Connection& c) {
    drain(c.events_, [&](QueuedEvent* event) { free_event(c, event); });
    c.last_event_ = nullptr;
    c.event_count_ = 0;
    c.event_sent_ = 0;
}

}  // namespace hv::xenstore::detail
