// Permissions: owners, the default entry, grants, privileged callers, inheritance, set/get_perms.
#include "xenstore_fixture.hpp"

using namespace xenstore_test;

TEST_CASE_METHOD(StoreFixture, "xenstore: another domain can neither read nor write a private node", "[xenstore][hostile]") {
    Client& owner = connect(1);
    Client& other = connect(2);
    REQUIRE(owner.write("secret", "s3") == strings({"OK"}));
    const std::uint64_t generation = store->generation();
    CHECK(other.read("/local/domain/1/secret") == "EACCES");
    CHECK(other.write("/local/domain/1/secret", "x") == "EACCES");
    CHECK(other.write("/local/domain/1/new", "x") == "EACCES");
    CHECK(other.ask(abi::XS_RM, strings({"/local/domain/1/secret"})) == "EACCES");
    CHECK(other.ask(abi::XS_DIRECTORY, strings({"/local/domain/1"})) == "EACCES");
    CHECK(other.ask(abi::XS_GET_PERMS, strings({"/local/domain/1/secret"})) == "EACCES");
    CHECK(other.ask(abi::XS_SET_PERMS, strings({"/local/domain/1/secret", "b2"})) == "EACCES");
    // A missing node under an unreadable one does not tell that it is missing.
    CHECK(other.read("/local/domain/1/nothing") == "EACCES");
    CHECK(other.read("/local/domain/2/nothing") == "ENOENT");
    CHECK(store->generation() == generation);
    CHECK(value("/local/domain/1/secret") == "s3");
    CHECK(owner.read("secret") == "s3");
}

TEST_CASE_METHOD(StoreFixture, "xenstore: a privileged connection passes every check", "[xenstore]") {
    Client& owner = connect(1);
    Client& dom0 = connect(0, true);
    REQUIRE(owner.write("secret", "s3") == strings({"OK"}));
    CHECK(dom0.read("/local/domain/1/secret") == "s3");
    CHECK(dom0.write("/local/domain/1/secret", "t") == strings({"OK"}));
    CHECK(dom0.ask(abi::XS_SET_PERMS, strings({"/local/domain/1/secret", "n0"})) == strings({"OK"}));
    CHECK(owner.read("secret") == "EACCES");  // it gave the node to domain 0
}

TEST_CASE_METHOD(StoreFixture, "xenstore: get_perms shows the list; grants and the default entry decide",
                 "[xenstore]") {
    Client& owner = connect(1);
    Client& other = connect(2);
    REQUIRE(owner.write("shared", "x") == strings({"OK"}));
    CHECK(owner.ask(abi::XS_GET_PERMS, strings({"shared"})) == strings({"n1"}));
    REQUIRE(owner.ask(abi::XS_SET_PERMS, strings({"shared", "n1", "r2"})) == strings({"OK"}));
    CHECK(owner.ask(abi::XS_GET_PERMS, strings({"shared"})) == strings({"n1", "r2"}));
    CHECK(other.read("/local/domain/1/shared") == "x");
    CHECK(other.write("/local/domain/1/shared", "y") == "EACCES");
    REQUIRE(owner.ask(abi::XS_SET_PERMS, strings({"shared", "r1", "w2"})) == strings({"OK"}));
    CHECK(other.read("/local/domain/1/shared") == "EACCES");
    CHECK(other.write("/local/domain/1/shared", "y") == strings({"OK"}));
    REQUIRE(owner.ask(abi::XS_SET_PERMS, strings({"shared", "b1"})) == strings({"OK"}));
    CHECK(other.read("/local/domain/1/shared") == "y");  // the default entry: everyone both
}

TEST_CASE_METHOD(StoreFixture, "xenstore: nodes a domain creates are its own, with the parent's other entries",
                 "[xenstore]") {
    Client& dom0 = connect(0, true);
    Client& guest = connect(2);
    REQUIRE(dom0.write("/backend/vif", "") == strings({"OK"}));
    REQUIRE(dom0.ask(abi::XS_SET_PERMS, strings({"/backend/vif", "n0", "b2", "r1"})) == strings({"OK"}));
    CHECK(guest.write("/backend/vif/2/state", "4") == strings({"OK"}));
    CHECK(dom0.ask(abi::XS_GET_PERMS, strings({"/backend/vif/2/state"})) == strings({"n2", "b2", "r1"}));
    CHECK(dom0.ask(abi::XS_GET_PERMS, strings({"/backend/vif/2"})) == strings({"n2", "b2", "r1"}));
    // Created by the privileged toolstack: the parent's list, owner and all.
    CHECK(dom0.write("/backend/vif/3", "") == strings({"OK"}));
    CHECK(dom0.ask(abi::XS_GET_PERMS, strings({"/backend/vif/3"})) == strings({"n0", "b2", "r1"}));
    CHECK(store->nodes_owned(DomId{2}) == 3);  // its home and the two nodes
}

TEST_CASE_METHOD(StoreFixture, "xenstore: an unprivileged owner may not give a node away; bad lists are refused",
                 "[xenstore][hostile]") {
    Client& owner = connect(1);
    REQUIRE(owner.write("mine", "") == strings({"OK"}));
    CHECK(owner.ask(abi::XS_SET_PERMS, strings({"mine", "b2"})) == "EPERM");
    CHECK(owner.ask(abi::XS_SET_PERMS, strings({"mine", "x1"})) == "EINVAL");
    CHECK(owner.ask(abi::XS_SET_PERMS, strings({"mine", "r"})) == "EINVAL");
    CHECK(owner.ask(abi::XS_SET_PERMS, strings({"mine", "r70000"})) == "EINVAL");
    CHECK(owner.ask(abi::XS_SET_PERMS, strings({"mine"})) == "EINVAL");
    CHECK(owner.ask(abi::XS_SET_PERMS, strings({"mine", "n1", "r2", "r3", "r4", "r5", "r6"})) == "ENOSPC");
    CHECK(owner.ask(abi::XS_GET_PERMS, strings({"mine"})) == strings({"n1"}));
    CHECK(store->check_invariants());
}
