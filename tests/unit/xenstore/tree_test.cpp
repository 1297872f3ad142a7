// The tree through the wire: read, write, mkdir, rm, directory, paths, domains and quotas.
#include "xenstore_fixture.hpp"

using namespace xenstore_test;

TEST_CASE_METHOD(StoreFixture, "xenstore: a write creates the missing parents, empty, and reads back", "[xenstore]") {
    Client& dom0 = connect(0, true);
    CHECK(dom0.write("/a/b/c", "value") == strings({"OK"}));
    CHECK(dom0.read("/a/b/c") == "value");
    CHECK(dom0.read("/a/b") == "");
    CHECK(dom0.ask(abi::XS_DIRECTORY, strings({"/a"})) == strings({"b"}));
    CHECK(dom0.write("/a/b/c", "") == strings({"OK"}));
    CHECK(dom0.read("/a/b/c") == "");
    CHECK(dom0.read("/a/x") == "ENOENT");
    CHECK(store->check_invariants());
}

TEST_CASE_METHOD(StoreFixture, "xenstore: values are bytes, NULs included", "[xenstore]") {
    Client& dom0 = connect(0, true);
    CHECK(dom0.write("/bin", "a\0b\0"s) == strings({"OK"}));
    CHECK(dom0.read("/bin") == "a\0b\0"s);
}

TEST_CASE_METHOD(StoreFixture, "xenstore: directory lists children sorted, each NUL-terminated", "[xenstore]") {
    Client& dom0 = connect(0, true);
    for (const char* name : {"zeta", "alpha", "mid"})
        REQUIRE(dom0.write("/d/"s + name, "x") == strings({"OK"}));
    CHECK(dom0.ask(abi::XS_DIRECTORY, strings({"/d"})) == strings({"alpha", "mid", "zeta"}));
    CHECK(dom0.ask(abi::XS_DIRECTORY, strings({"/d/alpha"})) == "");
    CHECK(dom0.ask(abi::XS_DIRECTORY, strings({"/nothing"})) == "ENOENT");
}

TEST_CASE_METHOD(StoreFixture, "xenstore: directory_part gives a generation and the list from an offset", "[xenstore]") {
    Client& dom0 = connect(0, true);
    for (const char* name : {"aa", "bb", "cc"})
        REQUIRE(dom0.write("/p/"s + name, "") == strings({"OK"}));
    const std::string whole = dom0.ask(abi::XS_DIRECTORY_PART, strings({"/p", "0"}));
    const std::string generation = whole.substr(0, whole.find('\0'));
    CHECK_FALSE(generation.empty());
    CHECK(whole == generation + '\0' + strings({"aa", "bb", "cc", ""}));
    CHECK(dom0.ask(abi::XS_DIRECTORY_PART, strings({"/p", "3"})) == generation + '\0' + strings({"bb", "cc", ""}));
    REQUIRE(dom0.write("/p/dd", "") == strings({"OK"}));
    const std::string after = dom0.ask(abi::XS_DIRECTORY_PART, strings({"/p", "0"}));
    CHECK(after.substr(0, after.find('\0')) != generation);
    CHECK(dom0.ask(abi::XS_DIRECTORY_PART, strings({"/p", "x"})) == "EINVAL");
}

TEST_CASE_METHOD(StoreFixture, "xenstore: mkdir creates, and leaves an existing node's value alone", "[xenstore]") {
    Client& dom0 = connect(0, true);
    CHECK(dom0.ask(abi::XS_MKDIR, strings({"/m/n"})) == strings({"OK"}));
    CHECK(dom0.read("/m/n") == "");
    REQUIRE(dom0.write("/m/n", "kept") == strings({"OK"}));
    const std::uint64_t generation = store->generation();
    CHECK(dom0.ask(abi::XS_MKDIR, strings({"/m/n"})) == strings({"OK"}));
    CHECK(dom0.read("/m/n") == "kept");
    CHECK(store->generation() == generation);
}

TEST_CASE_METHOD(StoreFixture, "xenstore: rm removes a subtree; a missing node is fine only under a parent", "[xenstore]") {
    Client& dom0 = connect(0, true);
    REQUIRE(dom0.write("/r/a/b/c", "1") == strings({"OK"}));
    REQUIRE(dom0.write("/r/keep", "2") == strings({"OK"}));
    CHECK(dom0.ask(abi::XS_RM, strings({"/r/a"})) == strings({"OK"}));
    CHECK(dom0.read("/r/a/b/c") == "ENOENT");
    CHECK(dom0.read("/r/a") == "ENOENT");
    CHECK(dom0.read("/r/keep") == "2");
    CHECK(dom0.ask(abi::XS_RM, strings({"/r/a"})) == strings({"OK"}));
    CHECK(dom0.ask(abi::XS_RM, strings({"/r/a/b"})) == "ENOENT");
    CHECK(dom0.ask(abi::XS_RM, strings({"/"})) == "EINVAL");
    CHECK(failure(store->rm("/r/a")) == Errc::enoent);
    CHECK(store->check_invariants());
}

TEST_CASE_METHOD(StoreFixture, "xenstore: malformed paths are EINVAL and change nothing", "[xenstore][hostile]") {
    Client& dom0 = connect(0, true);
    const std::uint64_t generation = store->generation();
    for (const std::string& path : {"/a//b"s, "/a/"s, ""s, "/a b"s, "/a/b*"s, "/caf\xc3\xa9"s, "@special"s,
                                    "/" + std::string(abi::XENSTORE_ABS_PATH_MAX, 'x'),
                                    std::string(abi::XENSTORE_REL_PATH_MAX + 1, 'y')}) {
        INFO(path.substr(0, 40));
        CHECK(dom0.write(path, "v") == "EINVAL");
        CHECK(dom0.read(path) == "EINVAL");
    }
    std::string deep;
    for (std::size_t i = 0; i <= max_path_depth; ++i)
        deep += "/d";
    CHECK(dom0.write(deep, "v") == "EINVAL");
    CHECK(dom0.write(deep.substr(2), "v") == strings({"OK"}));  // max_path_depth deep is fine
    CHECK(store->generation() == generation + 1);
    CHECK(failure(store->write("relative", "v")) == Errc::einval);
}

TEST_CASE_METHOD(StoreFixture, "xenstore: relative paths are under the caller's /local/domain/<id>", "[xenstore]") {
    Client& guest = connect(1);
    CHECK(guest.write("device/vif/0/state", "1") == strings({"OK"}));
    CHECK(value("/local/domain/1/device/vif/0/state") == "1");
    CHECK(guest.read("device/vif/0/state") == "1");
    CHECK(guest.ask(abi::XS_GET_DOMAIN_PATH, strings({"1"})) == strings({"/local/domain/1"}));
    CHECK(guest.ask(abi::XS_GET_DOMAIN_PATH, strings({"65535"})) == strings({"/local/domain/65535"}));
    CHECK(guest.ask(abi::XS_GET_DOMAIN_PATH, strings({"65536"})) == "EINVAL");
    CHECK(guest.ask(abi::XS_GET_DOMAIN_PATH, strings({"-1"})) == "EINVAL");
}

TEST_CASE_METHOD(StoreFixture, "xenstore: introduce makes the home owned by the domain, release removes it",
                 "[xenstore]") {
    std::array<Permission, 4> perms;
    REQUIRE(*store->get_perms("/local/domain/1", perms) == 1);
    CHECK(perms[0] == Permission{DomId{1}, Access::none});
    CHECK(failure(store->introduce(DomId{1})) == Errc::eexist);
    Client& dom0 = connect(0, true);
    CHECK(dom0.ask(abi::XS_IS_DOMAIN_INTRODUCED, strings({"2"})) == strings({"T"}));
    CHECK(dom0.ask(abi::XS_RELEASE, strings({"2"})) == strings({"OK"}));
    CHECK(dom0.ask(abi::XS_IS_DOMAIN_INTRODUCED, strings({"2"})) == strings({"F"}));
    CHECK_FALSE(exists("/local/domain/2"));
    CHECK(dom0.ask(abi::XS_RELEASE, strings({"2"})) == "ENOENT");
    CHECK(dom0.ask(abi::XS_INTRODUCE, strings({"7", "1234", "5"})) == strings({"OK"}));
    CHECK(store->introduced(DomId{7}));
    CHECK(dom0.ask(abi::XS_INTRODUCE, strings({"0", "1", "1"})) == "EINVAL");
    CHECK(store->check_invariants());
}

TEST_CASE_METHOD(StoreFixture, "xenstore: only a privileged connection may introduce, release or control",
                 "[xenstore][hostile]") {
    Client& guest = connect(1);
    CHECK(guest.ask(abi::XS_INTRODUCE, strings({"9", "1", "1"})) == "EACCES");
    CHECK(guest.ask(abi::XS_RELEASE, strings({"2"})) == "EACCES");
    CHECK(guest.ask(abi::XS_CONTROL, strings({"check"})) == "EACCES");
    CHECK_FALSE(store->introduced(DomId{9}));
    CHECK(store->introduced(DomId{2}));
    Client& dom0 = connect(0, true);
    CHECK(dom0.ask(abi::XS_CONTROL, strings({"check"})) == "ENOSYS");
}

TEST_CASE_METHOD(StoreFixture, "xenstore: quotas refuse with ENOSPC and change nothing", "[xenstore]") {
    clients.clear();
    store.reset();
    Limits limits;
    limits.nodes_per_domain = 4;
    limits.value_size = 8;
    store.emplace(memory, limits);
    REQUIRE(store->introduce(DomId{1}));
    CHECK(store->nodes_owned(DomId{1}) == 1);
    Client& guest = connect(1);
    CHECK(guest.write("v", "12345678") == strings({"OK"}));
    CHECK(guest.write("v", "123456789") == "ENOSPC");
    CHECK(guest.read("v") == "12345678");
    CHECK(guest.write("a/b/c", "") == "ENOSPC");  // would be 5 nodes
    CHECK(guest.read("a") == "ENOENT");
    CHECK(guest.write("a/b", "") == strings({"OK"}));
    CHECK(store->nodes_owned(DomId{1}) == 4);
    CHECK(guest.ask(abi::XS_RM, strings({"a"})) == strings({"OK"}));
    CHECK(store->nodes_owned(DomId{1}) == 2);
    CHECK(store->check_invariants());
}
