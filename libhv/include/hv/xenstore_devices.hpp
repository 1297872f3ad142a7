// The toolstack's part of a split device (a vbd, a vif...): the two xenstore directories libxl
// writes before either driver starts. Then the drivers run xenbus's handshake between themselves:
// each moves its own `state` and watches the other's (libguest's guest/xenbus.hpp is one side).
//
//   frontend  /local/domain/<front>/device/<type>/<id>          owned by the frontend, readable by
//             the backend: backend, backend-id, state = 1, then the caller's keys
//   backend   /local/domain/<back>/backend/<type>/<front>/<id>  owned by the backend, readable by
//             the frontend: frontend, frontend-id, online = 1, state = 1, then the caller's keys
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include <hv/xenstore.hpp>

namespace hv::xenstore {

struct SplitDevice {
    std::string_view type;  // "vbd", "vif"...: a path element, [a-z0-9_-] only
    std::uint32_t id = 0;   // the device's number in both directories (a vbd's virtual-device)
    DomId frontend{0};
    DomId backend{0};
};

struct DeviceKey {
    std::string_view name;  // relative to the directory: one path element
    std::string_view value;
};

// Writes both directories. EINVAL for a type or key name that is not one path element, or a
// frontend that is its own backend; ENOENT unless both domains are introduced; EEXIST if either
// directory exists. On an error what was written is removed again, but for ENOMEM: the store
// copies on write, so the removal itself may fail for memory; remove_split_device then clears it.
Result<void> add_split_device(Store& store, const SplitDevice& device, std::span<const DeviceKey> frontend_keys,
                              std::span<const DeviceKey> backend_keys);

// Removes both directories (what is left of them): libxl does so once the device is gone, and the
// backend's watch on its directory then tells it. ENOENT when neither exists.
Result<void> remove_split_device(Store& store, const SplitDevice& device);

// A virtual block device as libxl describes one to blkfront and blkback: the frontend gets
// virtual-device and device-type; the backend dev, type (phy), mode (w or r), params (what to
// serve), device-type, removable = 0, bootable = 1.
struct BlockDevice {
    DomId frontend{0};
    DomId backend{0};
    std::uint32_t virtual_device = 0;  // Xen's number: xvda is 202 << 8
    std::string_view dev;              // the name the toolstack was given: "xvda"
    std::string_view params;           // the backend's `params`: for pvkit's blkback "ram:<size>"
    bool writable = true;
};
Result<void> add_block_device(Store& store, const BlockDevice& device);
SplitDevice split_device_of(const BlockDevice& device);

}  // namespace hv::xenstore
