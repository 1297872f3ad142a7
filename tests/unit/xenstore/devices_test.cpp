// The toolstack's split-device directories: the keys libxl writes, who may read them, and
// nothing half-written when a device cannot be added.
#include <hv/xenstore_devices.hpp>

#include "xenstore_fixture.hpp"

using namespace xenstore_test;

namespace {

const BlockDevice xvda{.frontend = DomId{2},
                       .backend = DomId{1},
                       .virtual_device = 51712,
                       .dev = "xvda",
                       .params = "ram:4M",
                       .writable = true};
constexpr const char* front_dir = "/local/domain/2/device/vbd/51712";
constexpr const char* back_dir = "/local/domain/1/backend/vbd/2/51712";

}  // namespace

TEST_CASE_METHOD(StoreFixture, "xenstore: a block device gets libxl's keys in both directories", "[xenstore][devices]") {
    REQUIRE(add_block_device(*store, xvda));
    const std::string front = front_dir, back = back_dir;
    CHECK(value(front + "/backend") == back);
    CHECK(value(front + "/backend-id") == "1");
    CHECK(value(front + "/state") == "1");
    CHECK(value(front + "/virtual-device") == "51712");
    CHECK(value(front + "/device-type") == "disk");
    CHECK(value(back + "/frontend") == front);
    CHECK(value(back + "/frontend-id") == "2");
    CHECK(value(back + "/state") == "1");
    CHECK(value(back + "/online") == "1");
    CHECK(value(back + "/dev") == "xvda");
    CHECK(value(back + "/type") == "phy");
    CHECK(value(back + "/mode") == "w");
    CHECK(value(back + "/params") == "ram:4M");
    CHECK(value(back + "/removable") == "0");
    CHECK(value(back + "/bootable") == "1");
    BlockDevice read_only = xvda;
    read_only.virtual_device = 51728;
    read_only.writable = false;
    REQUIRE(add_block_device(*store, read_only));
    CHECK(value("/local/domain/1/backend/vbd/2/51728/mode") == "r");
    CHECK(store->check_invariants());
}

TEST_CASE_METHOD(StoreFixture, "xenstore: each end owns its directory, the other may read it, nobody else may", "[xenstore][devices][hostile]") {
    REQUIRE(store->introduce(DomId{3}));
    REQUIRE(add_block_device(*store, xvda));
    Client& backend = connect(1);
    Client& frontend = connect(2);
    Client& stranger = connect(3);
    const std::string front = front_dir, back = back_dir;
    // Each writes its own state, reads the other's, and cannot write the other's.
    CHECK(frontend.write(front + "/state", "3") == strings({"OK"}));
    CHECK(backend.write(back + "/state", "2") == strings({"OK"}));
    CHECK(backend.read(front + "/state") == "3");
    CHECK(frontend.read(back + "/state") == "2");
    CHECK(frontend.read(back + "/params") == "ram:4M");
    CHECK(frontend.write(back + "/state", "4") == "EACCES");
    CHECK(backend.write(front + "/ring-ref", "8") == "EACCES");
    CHECK(stranger.read(front + "/state") == "EACCES");
    CHECK(stranger.read(back + "/params") == "EACCES");
    // The frontend's keys it writes itself (ring-ref...) inherit the directory's list.
    CHECK(frontend.write(front + "/ring-ref", "8") == strings({"OK"}));
    CHECK(backend.read(front + "/ring-ref") == "8");
    CHECK(stranger.read(front + "/ring-ref") == "EACCES");
}

TEST_CASE_METHOD(StoreFixture, "xenstore: a device that cannot be added leaves nothing behind", "[xenstore][devices][hostile]") {
    const std::uint64_t generation = store->generation();
    BlockDevice own_backend = xvda;
    own_backend.backend = DomId{2};
    CHECK(add_block_device(*store, own_backend).error() == Errc::einval);
    BlockDevice unknown = xvda;
    unknown.backend = DomId{9};
    CHECK(add_block_device(*store, unknown).error() == Errc::enoent);
    CHECK(add_split_device(*store, {.type = "v/bd", .id = 1, .frontend = DomId{2}, .backend = DomId{1}}, {}, {})
              .error() == Errc::einval);
    const DeviceKey bad_key[] = {{"../state", "6"}};
    CHECK(add_split_device(*store, {.type = "vbd", .id = 1, .frontend = DomId{2}, .backend = DomId{1}}, bad_key, {})
              .error() == Errc::einval);
    CHECK(store->generation() == generation);

    // Out of memory at every step of the way. The store copies on write, so even the removal of
    // what was written may fail for memory; what is left, remove_split_device clears later.
    long failures = 0, cleaned = 0;
    for (long allowed = 0;; ++allowed) {
        REQUIRE(allowed < 1000);
        memory.fail_after = allowed;
        const auto added = add_block_device(*store, xvda);
        memory.fail_after = -1;
        if (added)
            break;
        ++failures;
        CHECK(added.error() == Errc::enomem);
        REQUIRE(store->check_invariants());
        cleaned += remove_split_device(*store, split_device_of(xvda)).has_value();
        CHECK_FALSE(exists(front_dir));
        CHECK_FALSE(exists(back_dir));
    }
    CHECK(failures > 10);  // one per node, at least
    CHECK(cleaned < failures);  // most failures clean up after themselves
    CHECK(add_block_device(*store, xvda).error() == Errc::eexist);
    CHECK(value(std::string(back_dir) + "/params") == "ram:4M");
    CHECK(store->check_invariants());
}

TEST_CASE_METHOD(StoreFixture, "xenstore: removing a device removes both directories", "[xenstore][devices]") {
    REQUIRE(add_block_device(*store, xvda));
    REQUIRE(remove_split_device(*store, split_device_of(xvda)));
    CHECK_FALSE(exists(front_dir));
    CHECK_FALSE(exists(back_dir));
    CHECK(remove_split_device(*store, split_device_of(xvda)).error() == Errc::enoent);
    // What is left of one, after its frontend's home went with the domain, goes too.
    REQUIRE(add_block_device(*store, xvda));
    REQUIRE(store->release(DomId{2}));
    CHECK(remove_split_device(*store, split_device_of(xvda)));
    CHECK_FALSE(exists(back_dir));
    CHECK(store->check_invariants());
}
