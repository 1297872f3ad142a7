// The Store: its root, the introduced domains, and the toolstack's side of the API.
#include "internal.hpp"

namespace hv::xenstore {

using namespace detail;

namespace {

constexpr Caller toolstack{DomId{0}, true};

// Toolstack paths are absolute, and special "@" names are for watches only.
bool valid_toolstack_path(std::string_view path) { return valid_absolute_path(path); }

Result<void> usable(const Store& store, std::string_view path) {
    if (!valid_toolstack_path(path))
        return Errc::einval;
    if (!store.ready())
        return Errc::enomem;
    return {};
}

}  // namespace

Store::Store(StoreMemory& memory, Limits limits) : memory_{memory}, limits_{limits} {
    const Permission owner{DomId{0}, Access::none};
    root_ = make_node(*this, owner.domain, ++node_generation_, {}, {}, {&owner, 1}, nullptr, 0);
}

Store::~Store() {
    if (root_ != nullptr)
        unreference(*this, root_);
    while (domains_ != nullptr) {
        DomainRecord* record = domains_;
        domains_ = record->next;
        memory_.release(record, sizeof(DomainRecord));
    }
}

Result<void> Store::introduce(DomId domain) {
    if (!ready())
        return Errc::enomem;
    if (introduced(domain))
        return Errc::eexist;
    auto* record = allocate<DomainRecord>(memory_, sizeof(DomainRecord));
    if (record == nullptr)
        return Errc::enomem;
    char home[24];
    const std::string_view path{home, domain_path(domain, home)};
    const Permission owner{domain, Access::none};
    if (auto made = StoreInternals::ensure_node(*this, path, {&owner, 1}); !made) {
        memory_.release(record, sizeof(DomainRecord));
        return made;
    }
    domains_ = ::new (record) DomainRecord{domains_, domain, 0, 0};
    // Nodes it owned and blocks charged to it before (a domain introduced again, its new home)
    // count too.
    StoreInternals::recount(*this);
    record->bytes = StoreInternals::tally_charges(*this, domain);
    StoreInternals::fire_special(*this, "@introduceDomain");
    return {};
}

Result<void> Store::release(DomId domain) {
    if (!introduced(domain))
        return Errc::enoent;
    char home[24];
    const std::string_view path{home, domain_path(domain, home)};
    if (auto removed = StoreInternals::remove(*this, toolstack, StoreInternals::committed(*this), path);
        !removed && removed.error() != Errc::enoent)
        return removed;
    for (Connection* c = connections_; c != nullptr; c = c->next_) {
        if (c->domain_ == domain) {
            StoreInternals::drop_watches(*c);
            StoreInternals::drop_transactions(*c);
        }
    }
    for (DomainRecord** link = &domains_; *link != nullptr; link = &(*link)->next) {
        if ((*link)->id == domain) {
            DomainRecord* record = *link;
            *link = record->next;
            memory_.release(record, sizeof(DomainRecord));
            break;
        }
    }
    StoreInternals::fire_special(*this, "@releaseDomain");
    return {};
}

bool Store::introduced(DomId domain) const { return StoreInternals::record(*this, domain) != nullptr; }

Result<void> Store::write(std::string_view path, std::string_view value) {
    if (!valid_toolstack_path(path))
        return Errc::einval;
    if (value.size() > abi::XENSTORE_PAYLOAD_MAX)
        return Errc::e2big;  // no reply could carry it
    if (!ready())
        return Errc::enomem;
    return StoreInternals::write(*this, toolstack, StoreInternals::committed(*this), path, &value);
}

Result<void> Store::mkdir(std::string_view path) {
    if (auto checked = usable(*this, path); !checked)
        return checked;
    return StoreInternals::write(*this, toolstack, StoreInternals::committed(*this), path, nullptr);
}

Result<void> Store::rm(std::string_view path) {
    if (auto checked = usable(*this, path); !checked)
        return checked;
    return StoreInternals::remove(*this, toolstack, StoreInternals::committed(*this), path);
}

Result<void> Store::set_perms(std::string_view path, std::span<const Permission> perms) {
    if (auto checked = usable(*this, path); !checked)
        return checked;
    return StoreInternals::set_perms(*this, toolstack, StoreInternals::committed(*this), path, perms);
}

Result<const Node*> StoreInternals::toolstack_find(const Store& store, std::string_view path) {
    if (!valid_toolstack_path(path))
        return Errc::einval;
    if (!store.ready())
        return Errc::enomem;
    Node* root = store.root_;
    const Node* node = find(View{&root, nullptr}, path);
    if (node == nullptr)
        return Errc::enoent;
    return node;
}

Result<std::size_t> Store::read(std::string_view path, std::span<char> value) const {
    auto found = StoreInternals::toolstack_find(*this, path);
    if (!found)
        return found.error();
    const Node* node = *found;
    const std::string_view text = node->value();
    const std::size_t copied = text.size() < value.size() ? text.size() : value.size();
    if (copied != 0)
        std::memcpy(value.data(), text.data(), copied);
    return text.size();
}

Result<std::size_t> Store::get_perms(std::string_view path, std::span<Permission> perms) const {
    auto found = StoreInternals::toolstack_find(*this, path);
    if (!found)
        return found.error();
    const Node* node = *found;
    for (std::size_t i = 0; i < perms.size() && i < node->perm_count; ++i)
        perms[i] = node->perms()[i];
    return node->perm_count;
}

Result<std::size_t> Store::children(std::string_view path) const {
    auto found = StoreInternals::toolstack_find(*this, path);
    if (!found)
        return found.error();
    const Node* node = *found;
    return node->child_count;
}

std::uint32_t Store::nodes_owned(DomId domain) const {
    const DomainRecord* record = StoreInternals::record(*this, domain);
    return record != nullptr ? record->nodes : 0;
}

std::uint64_t Store::bytes_charged(DomId domain) const {
    const DomainRecord* record = StoreInternals::record(*this, domain);
    return record != nullptr ? record->bytes : 0;
}

bool Store::check_invariants() const {
    if (root_ == nullptr)
        return domains_ == nullptr;
    bool ok = root_->references >= 1 && root_->name().empty();
    for_each_node(*root_, [&](const Node& node) {
        ok = ok && node.perm_count >= 1 && node.references >= 1 && (node.child_count == 0) == (node.children == nullptr);
        for (std::uint32_t i = 0; ok && i < node.child_count; ++i) {
            const Node& child = *node.children[i];
            ok = !child.name().empty() && (i == 0 || node.children[i - 1]->name() < child.name());
        }
    });
    for (const DomainRecord* record = domains_; ok && record != nullptr; record = record->next) {
        std::uint32_t owned = 0;
        for_each_node(*root_, [&](const Node& node) { owned += node.owner() == record->id; });
        ok = owned == record->nodes && StoreInternals::tally_charges(*this, record->id) == record->bytes;
    }
    for (const Connection* c = connections_; ok && c != nullptr; c = c->next_) {
        std::uint32_t watches = 0, transactions = 0, events = 0;
        for (const Watch* w = c->watches_; w != nullptr; w = w->next)
            ++watches;
        for (const Transaction* t = c->transactions_; t != nullptr; t = t->next)
            transactions += t->root != nullptr && t->root->references >= 1;
        for (const QueuedEvent* e = c->events_; e != nullptr; e = e->next)
            ++events;
        ok = watches == c->watch_count_ && transactions == c->transaction_count_ && events == c->event_count_;
    }
    return ok;
}

}  // namespace hv::xenstore
