// A split device's two directories, written through the toolstack's side of the store.
#include <hv/xenstore_devices.hpp>

#include <array>
#include <charconv>

namespace hv::xenstore {
namespace {

constexpr std::size_t path_size = 128;

// Appends to a path being built in a fixed buffer; a path that does not fit is refused whole.
class PathBuilder {
public:
    PathBuilder& text(std::string_view part) {
        if (part.size() > buffer_.size() - length_) {
            overflow_ = true;
            return *this;
        }
        for (const char c : part)
            buffer_[length_++] = c;
        return *this;
    }
    PathBuilder& number(std::uint32_t value) {
        std::array<char, 10> digits{};
        const auto end = std::to_chars(digits.data(), digits.data() + digits.size(), value).ptr;
        return text({digits.data(), static_cast<std::size_t>(end - digits.data())});
    }
    bool fits() const { return !overflow_; }
    std::string_view view() const { return {buffer_.data(), length_}; }

private:
    std::array<char, path_size> buffer_{};
    std::size_t length_ = 0;
    bool overflow_ = false;
};

bool is_path_element(std::string_view name) {
    if (name.empty())
        return false;
    for (const char c : name)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return false;
    return true;
}

PathBuilder frontend_path(const SplitDevice& device) {
    PathBuilder path;
    path.text("/local/domain/").number(device.frontend.value).text("/device/").text(device.type).text("/").number(
        device.id);
    return path;
}

PathBuilder backend_path(const SplitDevice& device) {
    PathBuilder path;
    path.text("/local/domain/")
        .number(device.backend.value)
        .text("/backend/")
        .text(device.type)
        .text("/")
        .number(device.frontend.value)
        .text("/")
        .number(device.id);
    return path;
}

// One directory: made, given its permissions (the keys written next inherit them), then filled.
Result<void> write_directory(Store& store, std::string_view directory, DomId owner, DomId reader,
                             std::span<const DeviceKey> common, std::span<const DeviceKey> extra) {
    if (const auto made = store.mkdir(directory); !made)
        return made;
    const std::array<Permission, 2> perms{{{owner, Access::none}, {reader, Access::read}}};
    if (const auto set = store.set_perms(directory, perms); !set)
        return set;
    for (const auto keys : {common, extra}) {
        for (const DeviceKey& key : keys) {
            PathBuilder path;
            path.text(directory).text("/").text(key.name);
            if (!path.fits())
                return Errc::einval;
            if (const auto written = store.write(path.view(), key.value); !written)
                return written;
        }
    }
    return {};
}

}  // namespace

Result<void> add_split_device(Store& store, const SplitDevice& device, std::span<const DeviceKey> frontend_keys,
                              std::span<const DeviceKey> backend_keys) {
    if (!is_path_element(device.type) || device.frontend == device.backend)
        return Errc::einval;
    for (const auto keys : {frontend_keys, backend_keys})
        for (const DeviceKey& key : keys)
            if (!is_path_element(key.name))
                return Errc::einval;
    if (!store.introduced(device.frontend) || !store.introduced(device.backend))
        return Errc::enoent;
    const PathBuilder front = frontend_path(device), back = backend_path(device);
    if (!front.fits() || !back.fits())
        return Errc::einval;
    std::array<char, 1> probe{};
    if (store.read(front.view(), probe) || store.read(back.view(), probe))
        return Errc::eexist;

    std::array<char, 10> front_id{}, back_id{};
    const auto decimal = [](std::array<char, 10>& digits, std::uint16_t value) {
        const auto end = std::to_chars(digits.data(), digits.data() + digits.size(), value).ptr;
        return std::string_view{digits.data(), static_cast<std::size_t>(end - digits.data())};
    };
    constexpr std::string_view initialising = "1";  // XenbusStateInitialising
    const std::array<DeviceKey, 3> front_common{{{"backend", back.view()},
                                                 {"backend-id", decimal(back_id, device.backend.value)},
                                                 {"state", initialising}}};
    const std::array<DeviceKey, 4> back_common{{{"frontend", front.view()},
                                                {"frontend-id", decimal(front_id, device.frontend.value)},
                                                {"online", "1"},
                                                {"state", initialising}}};
    auto written = write_directory(store, back.view(), device.backend, device.frontend, back_common, backend_keys);
    if (written)
        written = write_directory(store, front.view(), device.frontend, device.backend, front_common, frontend_keys);
    if (!written)
        (void)remove_split_device(store, device);
    return written;
}

Result<void> remove_split_device(Store& store, const SplitDevice& device) {
    const PathBuilder front = frontend_path(device), back = backend_path(device);
    if (!front.fits() || !back.fits())
        return Errc::einval;
    const auto front_removed = store.rm(front.view());
    const auto back_removed = store.rm(back.view());
    return front_removed || back_removed ? Result<void>{} : Result<void>{Errc::enoent};
}

SplitDevice split_device_of(const BlockDevice& device) {
    return {.type = "vbd", .id = device.virtual_device, .frontend = device.frontend, .backend = device.backend};
}

Result<void> add_block_device(Store& store, const BlockDevice& device) {
    std::array<char, 10> id_text{};
    const auto end = std::to_chars(id_text.data(), id_text.data() + id_text.size(), device.virtual_device).ptr;
    const std::string_view virtual_device{id_text.data(), static_cast<std::size_t>(end - id_text.data())};
    const std::array<DeviceKey, 2> frontend_keys{{{"virtual-device", virtual_device}, {"device-type", "disk"}}};
    const std::array<DeviceKey, 7> backend_keys{{{"dev", device.dev},
                                                 {"type", "phy"},
                                                 {"mode", device.writable ? "w" : "r"},
                                                 {"params", device.params},
                                                 {"device-type", "disk"},
                                                 {"removable", "0"},
                                                 {"bootable", "1"}}};
    return add_split_device(store, split_device_of(device), frontend_keys, backend_keys);
}

}  // namespace hv::xenstore
