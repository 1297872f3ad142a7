// The messages of xenstore.txt: each request is decoded (its strings, its path made absolute, its
// transaction found) and handed to the tree, watches or transactions; the answer goes into the
// connection's reply, echoing type, req_id and tx_id, or as XS_ERROR with the errno's name.
//
// Payload rules, as xenstored: a one-argument request is exactly one NUL-terminated string;
// requests of several strings need each NUL-terminated (bytes after the last NUL are ignored);
// WRITE is a path, NUL, then the value (any bytes). A tx_id that names no open transaction of this
// connection is ENOENT for every message but TRANSACTION_START, for which any tx_id but 0 is
// EBUSY. Replies longer than XENSTORE_PAYLOAD_MAX are E2BIG.
#include "internal.hpp"

namespace hv::xenstore::detail {
namespace {

constexpr std::size_t header_size = sizeof(abi::xsd_sockmsg);

// The payload of the reply being built, in the connection's reply buffer.
struct Reply {
    char* buffer;  // header then payload
    std::uint32_t length = 0;
    bool overflow = false;

    void append(std::string_view text) {
        if (overflow || length + text.size() > abi::XENSTORE_PAYLOAD_MAX) {
            overflow = true;
            return;
        }
        if (!text.empty())
            std::memcpy(buffer + header_size + length, text.data(), text.size());
        length += static_cast<std::uint32_t>(text.size());
    }
    void append_string(std::string_view text) {
        append(text);
        append(std::string_view{"", 1});
    }
};

struct Request {
    Connection& connection;
    Store& store;
    Caller caller;
    View view;
    abi::xsd_sockmsg header;
    std::string_view payload;
    char* scratch;  // room for an absolute path of XENSTORE_ABS_PATH_MAX bytes
};

struct ResolvedPath {
    std::string_view absolute;
    std::size_t relative_skip;  // 0, or the bytes of "/local/domain/<id>/" before the given path
};

std::string_view error_name(Errc error) {
    switch (error) {
    case Errc::einval: return "EINVAL";
    case Errc::eacces: return "EACCES";
    case Errc::eexist: return "EEXIST";
    case Errc::eisdir: return "EISDIR";
    case Errc::enoent: return "ENOENT";
    case Errc::enomem: return "ENOMEM";
    case Errc::enospc: return "ENOSPC";
    case Errc::enotempty: return "ENOTEMPTY";
    case Errc::enosys: return "ENOSYS";
    case Errc::erofs: return "EROFS";
    case Errc::ebusy: return "EBUSY";
    case Errc::eagain: return "EAGAIN";
    case Errc::eisconn: return "EISCONN";
    case Errc::e2big: return "E2BIG";
    case Errc::eperm: return "EPERM";
    default: return "EIO";  // xs_wire.h names no other
    }
}

// The NUL-terminated strings at the start of a payload, up to out.size(); returns how many.
std::size_t split_strings(std::string_view payload, std::span<std::string_view> out) {
    std::size_t count = 0;
    std::size_t start = 0;
    while (count < out.size()) {
        const std::size_t end = find_byte(payload, '\0', start);
        if (end == payload.size())
            break;
        out[count++] = slice(payload, start, end - start);
        start = end + 1;
    }
    return count;
}

Result<std::string_view> one_argument(std::string_view payload) {
    if (payload.empty() || find_byte(payload, '\0') != payload.size() - 1)
        return Errc::einval;
    return slice(payload, 0, payload.size() - 1);
}

Result<ResolvedPath> resolve(const Request& r, std::string_view text, bool special_allowed) {
    if (text.empty())
        return Errc::einval;
    if (text[0] == '@') {
        // A special watch name: "@" and path characters, of any length a path may have.
        if (!special_allowed || text.size() > abi::XENSTORE_ABS_PATH_MAX)
            return Errc::einval;
        const std::string_view rest = slice(text, 1);
        for (const char c : rest)
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                  c == '_' || c == '@' || c == '/'))
                return Errc::einval;
        return ResolvedPath{text, 0};
    }
    if (text[0] == '/')
        return valid_absolute_path(text) ? Result<ResolvedPath>{ResolvedPath{text, 0}} : Errc::einval;
    if (text.size() > abi::XENSTORE_REL_PATH_MAX)
        return Errc::einval;
    std::size_t length = domain_path(r.caller.domain, r.scratch);
    r.scratch[length++] = '/';
    std::memcpy(r.scratch + length, text.data(), text.size());
    const std::string_view absolute{r.scratch, length + text.size()};
    if (!valid_absolute_path(absolute))
        return Errc::einval;
    return ResolvedPath{absolute, length};
}

Result<DomId> domain_argument(std::string_view payload) {
    std::string_view text[1];
    if (split_strings(payload, text) != 1)
        return Errc::einval;
    std::uint64_t value = 0;
    if (!parse_decimal(text[0], 0xffff, value))
        return Errc::einval;
    return DomId{static_cast<abi::domid_t>(value)};
}

Result<void> list_children(const Node& node, Reply& reply) {
    for (std::uint32_t i = 0; i < node.child_count; ++i)
        reply.append_string(node.children[i]->name());
    return reply.overflow ? Result<void>{Errc::e2big} : Result<void>{};
}

Result<void> directory_part(const Request& r, Reply& reply) {
    std::string_view args[2];
    if (split_strings(r.payload, args) != 2)
        return Errc::einval;
    std::uint64_t offset = 0;
    if (!parse_decimal(args[1], UINT32_MAX, offset))
        return Errc::einval;
    auto path = resolve(r, args[0], false);
    if (!path)
        return path.error();
    auto node = StoreInternals::readable(r.store, r.caller, r.view, path->absolute);
    if (!node)
        return node.error();
    char generation[20];
    reply.append_string({generation, format_decimal((*node)->generation, generation)});
    // As many whole names from the offset as fit; an empty name ends a list given to its end.
    std::size_t position = 0;
    bool complete = true;
    for (std::uint32_t i = 0; i < (*node)->child_count; ++i) {
        const std::string_view name = (*node)->children[i]->name();
        const std::size_t start = position;
        position += name.size() + 1;
        if (start < offset)
            continue;
        if (reply.length + name.size() + 2 > abi::XENSTORE_PAYLOAD_MAX) {
            complete = false;
            break;
        }
        reply.append_string(name);
    }
    if (complete)
        reply.append_string({});
    return {};
}

Result<void> set_perms(const Request& r, Reply& reply) {
    std::array<std::string_view, max_perms_per_node + 2> args;
    const std::size_t count = split_strings(r.payload, args);
    if (count < 2)
        return Errc::einval;
    if (count > max_perms_per_node + 1)
        return Errc::enospc;
    auto path = resolve(r, args[0], false);
    if (!path)
        return path.error();
    std::array<Permission, max_perms_per_node> perms;
    for (std::size_t i = 1; i < count; ++i)
        if (!parse_permission(args[i], perms[i - 1]))
            return Errc::einval;
    auto done = StoreInternals::set_perms(r.store, r.caller, r.view, path->absolute, {perms.data(), count - 1});
    if (done)
        reply.append_string("OK");
    return done;
}

Result<void> watch(const Request& r, Reply& reply, bool add) {
    std::string_view args[2];
    if (split_strings(r.payload, args) != 2)
        return Errc::einval;
    auto path = resolve(r, args[0], true);
    if (!path)
        return path.error();
    Connection& c = r.connection;
    auto done = add ? StoreInternals::add_watch(c, path->absolute, args[1], path->relative_skip)
                    : StoreInternals::remove_watch(c, path->absolute, args[1]);
    if (!done)
        return done;
    reply.append_string("OK");
    if (add)  // fires once at once, with the path as given (relative stays relative)
        StoreInternals::queue_event(c, args[0], args[1]);
    return {};
}

Result<void> tree_request(const Request& r, Reply& reply) {
    const std::uint32_t type = r.header.type;
    std::string_view text;
    std::string_view value;
    const bool writing = type == abi::XS_WRITE;
    if (writing) {
        const std::size_t nul = find_byte(r.payload, '\0');
        if (nul == r.payload.size())
            return Errc::einval;
        text = slice(r.payload, 0, nul);
        value = slice(r.payload, nul + 1);
    } else {
        auto argument = one_argument(r.payload);
        if (!argument)
            return argument.error();
        text = *argument;
    }
    auto path = resolve(r, text, false);
    if (!path)
        return path.error();
    const std::string_view absolute = path->absolute;
    Result<void> done;
    switch (type) {
    case abi::XS_WRITE: done = StoreInternals::write(r.store, r.caller, r.view, absolute, &value); break;
    case abi::XS_MKDIR: done = StoreInternals::write(r.store, r.caller, r.view, absolute, nullptr); break;
    case abi::XS_RM:
        done = StoreInternals::remove(r.store, r.caller, r.view, absolute);
        if (!done && done.error() == Errc::enoent) {
            // Removing what is not there is fine when its parent is.
            std::size_t slash = absolute.size() - 1;
            while (absolute[slash] != '/')  // an absolute path starts with one
                --slash;
            const std::string_view parent = slash == 0 ? std::string_view{"/"} : slice(absolute, 0, slash);
            if (StoreInternals::readable(r.store, r.caller, r.view, parent))
                done = {};
        }
        break;
    default: {
        auto node = StoreInternals::readable(r.store, r.caller, r.view, absolute);
        if (!node)
            return node.error();
        if (type == abi::XS_READ) {
            reply.append((*node)->value());
        } else if (type == abi::XS_DIRECTORY) {
            return list_children(**node, reply);
        } else {  // XS_GET_PERMS
            for (const Permission& perm : (*node)->perm_list()) {
                char text_perm[8] = {access_letter(perm.access)};
                reply.append_string({text_perm, 1 + format_decimal(perm.domain.value, text_perm + 1)});
            }
        }
        return {};
    }
    }
    if (done)
        reply.append_string("OK");
    return done;
}

Result<void> dispatch(const Request& r, Reply& reply) {
    Connection& c = r.connection;
    const bool privileged = r.caller.privileged;
    switch (r.header.type) {
    case abi::XS_READ:
    case abi::XS_WRITE:
    case abi::XS_MKDIR:
    case abi::XS_RM:
    case abi::XS_DIRECTORY:
    case abi::XS_GET_PERMS: return tree_request(r, reply);
    case abi::XS_DIRECTORY_PART: return directory_part(r, reply);
    case abi::XS_SET_PERMS: return set_perms(r, reply);
    case abi::XS_WATCH: return watch(r, reply, true);
    case abi::XS_UNWATCH: return watch(r, reply, false);
    case abi::XS_TRANSACTION_START: {
        auto id = StoreInternals::start_transaction(c);
        if (!id)
            return id.error();
        char text[20];
        reply.append_string({text, format_decimal(*id, text)});
        return {};
    }
    case abi::XS_TRANSACTION_END: {
        auto argument = one_argument(r.payload);
        if (r.view.transaction == nullptr)
            return Errc::enoent;
        if (!argument || (*argument != "T" && *argument != "F"))
            return Errc::einval;
        auto done = StoreInternals::end_transaction(c, *r.view.transaction, *argument == "T");
        if (done)
            reply.append_string("OK");
        return done;
    }
    case abi::XS_GET_DOMAIN_PATH:
    case abi::XS_IS_DOMAIN_INTRODUCED: {
        auto domain = domain_argument(r.payload);
        if (!domain)
            return domain.error();
        char path[24];
        if (r.header.type == abi::XS_GET_DOMAIN_PATH)
            reply.append_string({path, domain_path(*domain, path)});
        else
            reply.append_string(r.store.introduced(*domain) ? "T" : "F");
        return {};
    }
    case abi::XS_INTRODUCE:
    case abi::XS_RELEASE: {
        if (!privileged)
            return Errc::eacces;
        std::string_view first[1];
        if (split_strings(r.payload, first) != 1)
            return Errc::einval;
        std::uint64_t id = 0;
        if (!parse_decimal(first[0], 0xffff, id) || (r.header.type == abi::XS_INTRODUCE && id == 0))
            return Errc::einval;
        const DomId domain{static_cast<abi::domid_t>(id)};
        auto done = r.header.type == abi::XS_INTRODUCE ? r.store.introduce(domain) : r.store.release(domain);
        if (done)
            reply.append_string("OK");
        return done;
    }
    case abi::XS_RESET_WATCHES:
        StoreInternals::drop_watches(c);
        StoreInternals::drop_transactions(c);
        reply.append_string("OK");
        return {};
    case abi::XS_CONTROL:
    case abi::XS_RESUME:
    case abi::XS_SET_TARGET: return privileged ? Errc::enosys : Errc::eacces;
    default: return Errc::einval;  // XS_WATCH_EVENT, XS_ERROR and unknown types
    }
}

}  // namespace

void ConnectionInternals::answer(Connection& c) {
    Request r{c,
              c.store_,
              Caller{c.domain_, c.privileged_},
              StoreInternals::committed(c.store_),
              {},
              {},
              c.path_.data()};
    std::memcpy(&r.header, c.request_.data(), header_size);
    r.payload = {c.request_.data() + header_size, r.header.len};
    Reply reply{c.reply_.data()};
    Result<void> outcome;
    if (r.header.type == abi::XS_INVALID) {
        outcome = Errc::einval;
    } else if (r.header.type == abi::XS_TRANSACTION_START) {
        if (r.header.tx_id != 0)
            outcome = Errc::ebusy;
    } else if (r.header.tx_id != 0) {
        Transaction* tx = StoreInternals::find_transaction(c, r.header.tx_id);
        if (tx == nullptr)
            outcome = Errc::enoent;
        else
            r.view = View{&tx->root, tx};
    }
    if (outcome)
        outcome = dispatch(r, reply);
    if (outcome && reply.overflow)
        outcome = Errc::e2big;
    abi::xsd_sockmsg header = r.header;
    if (!outcome) {
        reply.length = 0;
        reply.overflow = false;
        reply.append_string(error_name(outcome.error()));
        header.type = abi::XS_ERROR;
    }
    header.len = reply.length;
    std::memcpy(c.reply_.data(), &header, header_size);
    c.reply_length_ = static_cast<std::uint32_t>(header_size) + reply.length;
    c.reply_sent_ = 0;
}

}  // namespace hv::xenstore::detail
