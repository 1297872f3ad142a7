// Node blocks: making them, dropping references, finding children, and who may do what to one.
// The rules they keep are in internal.hpp's opening comment.
#include "internal.hpp"

namespace hv::xenstore::detail {

Node* make_node(Store& store, DomId charged, std::uint64_t generation, std::string_view name, std::string_view value,
                std::span<const Permission> perms, Node** children, std::uint32_t child_count) {
    StoreMemory& memory = StoreInternals::memory_of(store);
    const std::size_t bytes = node_bytes(perms.size(), name.size(), value.size());
    void* block = memory.allocate(bytes);
    if (block == nullptr)
        return nullptr;
    Node* node = ::new (block) Node{1,
                                    static_cast<std::uint16_t>(value.size()),
                                    static_cast<std::uint16_t>(name.size()),
                                    static_cast<std::uint8_t>(perms.size()),
                                    false,
                                    charged,
                                    child_count,
                                    generation,
                                    children};
    for (std::size_t i = 0; i < perms.size(); ++i)
        ::new (node->perms() + i) Permission{perms[i]};
    char* text = const_cast<char*>(node->name().data());
    if (!name.empty())
        std::memcpy(text, name.data(), name.size());
    if (!value.empty())
        std::memcpy(text + name.size(), value.data(), value.size());
    StoreInternals::charge(store, charged, static_cast<std::int64_t>(node_charge(memory, bytes, child_count)));
    return node;
}

void reference(Node* node) { ++node->references; }

void unreference(Store& store, Node* node) {
    if (--node->references != 0)
        return;
    // Depth is bounded by max_path_depth, so is this recursion.
    for (std::uint32_t i = 0; i < node->child_count; ++i)
        unreference(store, node->children[i]);
    StoreMemory& memory = StoreInternals::memory_of(store);
    const std::size_t bytes = node->bytes();
    StoreInternals::charge(store, node->charged, -static_cast<std::int64_t>(node_charge(memory, bytes, node->child_count)));
    if (node->children != nullptr)
        memory.release(node->children, node->child_count * sizeof(Node*));
    node->~Node();
    memory.release(node, bytes);
}

Node* find_child(const Node& node, std::string_view name, std::uint32_t& index) {
    std::uint32_t low = 0;
    std::uint32_t high = node.child_count;
    while (low < high) {
        const std::uint32_t middle = low + (high - low) / 2;
        const int order = node.children[middle]->name().compare(name);
        if (order == 0) {
            index = middle;
            return node.children[middle];
        }
        if (order < 0)
            low = middle + 1;
        else
            high = middle;
    }
    index = low;
    return nullptr;
}

Access access_for(const Caller& caller, std::span<const Permission> perms) {
    if (caller.privileged || perms[0].domain == caller.domain)
        return Access::both;
    for (std::size_t i = 1; i < perms.size(); ++i)
        if (perms[i].domain == caller.domain)
            return perms[i].access;
    return perms[0].access;
}

}  // namespace hv::xenstore::detail
