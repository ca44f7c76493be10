"""inventories/aws_ec2.yml, unchanged, against a fake EC2 API (moto's server):
`ansible-inventory --graph` and `--list` with the real amazon.aws.aws_ec2
plugin and inventories/group_vars/.

No lab needed: moto runs in this process on 127.0.0.1; the plugin reaches it
through boto3's AWS_ENDPOINT_URL_EC2, with fake credentials and no ~/.aws.
"""

import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys

import pytest

import boto3  # requirements.txt: a missing one must fail, not skip
import moto.server as moto_server  # requirements-dev.txt

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
INVENTORY = os.path.join(REPO, "inventories", "aws_ec2.yml")
COLLECTIONS = os.environ.get("ANSIBLE_COLLECTIONS_PATH", os.path.join(REPO, ".build", "collections"))
REGION = "eu-west-1"

# Running lazypull instances: (Name tag or None, Snapshotter tag or None, instance type).
FLEET = [
    ("lazypull-stargz-1", "stargz", "m6i.2xlarge"),
    ("lazypull-stargz-2", "stargz", "g5.xlarge"),
    ("lazypull-soci-1", "soci", "m6i.2xlarge"),
    (None, "overlayfs", "c6i.large"),  # no Name tag: named by its private DNS name
    ("lazypull-untagged-1", None, "t3.medium"),  # no Snapshotter tag: not in `fleet`
]


def ansible_inventory_bin():
    local = os.path.join(os.path.dirname(sys.executable), "ansible-inventory")
    return local if os.path.exists(local) else shutil.which("ansible-inventory")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def aws_env(tmp_path_factory):
    """A moto server and the environment that points AWS clients at it (and nowhere else)."""
    assert os.path.isdir(os.path.join(COLLECTIONS, "ansible_collections", "amazon", "aws")), \
        "amazon.aws is not in %s (make venv)" % COLLECTIONS
    assert ansible_inventory_bin(), "ansible-inventory not found"
    home = tmp_path_factory.mktemp("home")
    port = free_port()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request under `pytest -s`
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL_EC2": "http://127.0.0.1:%d" % port,
        "ANSIBLE_CONFIG": os.path.join(REPO, "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": COLLECTIONS,
        "ANSIBLE_LOCAL_TEMP": str(home / "ansible-tmp"),
        "ANSIBLE_HOME": str(home / ".ansible"),
        # An inventory the plugin fails to parse is an error, not an empty inventory.
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "true",
        "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "true",
    }
    yield env
    server.stop()


@pytest.fixture(scope="module")
def instances(aws_env):
    """Launch the fleet plus two instances the inventory must leave out; return the expected hosts."""
    ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=aws_env["AWS_ENDPOINT_URL_EC2"],
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]

    def launch(tags, instance_type="t3.micro"):
        spec = [{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items() if v]}]
        return ec2.run_instances(ImageId=image, InstanceType=instance_type, MinCount=1, MaxCount=1,
                                 TagSpecifications=spec)["Instances"][0]

    expected = {}
    for name, snapshotter, instance_type in FLEET:
        inst = launch({"Project": "lazypull", "Name": name, "Snapshotter": snapshotter}, instance_type)
        expected[name or inst["PrivateDnsName"]] = {
            "snapshotter": snapshotter, "type": instance_type, "ip": inst["PrivateIpAddress"], "id": inst["InstanceId"]}
    stopped = launch({"Project": "lazypull", "Name": "lazypull-stopped-1", "Snapshotter": "soci"})
    ec2.stop_instances(InstanceIds=[stopped["InstanceId"]])
    launch({"Project": "other", "Name": "other-project-1", "Snapshotter": "stargz"})
    states = {i["InstanceId"]: i["State"]["Name"]
              for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]}
    assert states[stopped["InstanceId"]] == "stopped"
    assert len(states) == len(FLEET) + 2
    return expected


def ansible_inventory(env, *args):
    proc = subprocess.run([ansible_inventory_bin(), "-i", INVENTORY, *args], cwd=REPO, env=env,
                          capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def plain(value):
    """ansible-core >= 2.19 writes values the plugin marked unsafe as {"__ansible_unsafe": value}."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


@pytest.fixture(scope="module")
def inventory(aws_env, instances):
    return plain(json.loads(ansible_inventory(aws_env, "--list")))


def group_hosts(inventory, group):
    """Hosts of a group and its children, from `ansible-inventory --list`."""
    entry = inventory.get(group, {})
    hosts = set(entry.get("hosts", []))
    for child in entry.get("children", []):
        hosts |= group_hosts(inventory, child)
    return hosts


def test_only_running_hosts_of_the_project(inventory, instances):
    assert set(inventory["_meta"]["hostvars"]) == set(instances)
    assert group_hosts(inventory, "all") == set(instances)


def test_hostnames_name_tag_then_private_dns_name(inventory):
    hosts = set(inventory["_meta"]["hostvars"])
    assert {"lazypull-stargz-1", "lazypull-stargz-2", "lazypull-soci-1", "lazypull-untagged-1"} < hosts
    unnamed = [host for host in hosts if not host.startswith("lazypull-")]
    assert len(unnamed) == 1 and re.fullmatch(r"ip-[0-9-]+\.eu-west-1\.compute\.internal", unnamed[0]), hosts


@pytest.mark.parametrize("snapshotter", ["stargz", "soci", "overlayfs"])
def test_snapshotter_groups_from_the_tag(inventory, instances, snapshotter):
    expected = {host for host, inst in instances.items() if inst["snapshotter"] == snapshotter}
    assert expected
    assert group_hosts(inventory, "snapshotter_" + snapshotter) == expected


def test_instance_type_groups(inventory, instances):
    type_groups = {g for g in inventory if g.startswith("type_")}
    assert type_groups == {"type_m6i_2xlarge", "type_g5_xlarge", "type_c6i_large", "type_t3_medium"}
    for group in type_groups:
        expected = {host for host, inst in instances.items() if "type_" + re.sub(r"\W", "_", inst["type"]) == group}
        assert group_hosts(inventory, group) == expected, group
    assert len(group_hosts(inventory, "type_m6i_2xlarge")) == 2


def test_fleet_group_is_the_tagged_hosts(inventory, instances):
    assert group_hosts(inventory, "fleet") == {host for host, inst in instances.items() if inst["snapshotter"]}
    assert "lazypull-untagged-1" in group_hosts(inventory, "all")


def test_ansible_host_is_the_private_ip(inventory, instances):
    hostvars = inventory["_meta"]["hostvars"]
    for host, inst in instances.items():
        assert hostvars[host]["ansible_host"] == inst["ip"], host
        assert hostvars[host]["instance_id"] == inst["id"], host


def test_group_vars_pick_each_hosts_snapshotter(inventory, instances):
    hostvars = inventory["_meta"]["hostvars"]
    for host, inst in instances.items():
        if inst["snapshotter"]:
            assert hostvars[host]["rollout_snapshotter"] == inst["snapshotter"], host
        else:
            assert "rollout_snapshotter" not in hostvars[host], host
        # group_vars/all.yml reaches every host
        assert hostvars[host]["rollout_cri_default"] is False, host
        assert set(hostvars[host]["rollout_probe_images"]) == {"stargz", "soci"}, host
    stargz = hostvars["lazypull-stargz-1"]
    assert stargz["stargz_snapshotter_ecr_registries"] and "soci_snapshotter_ecr_registries" not in stargz
    soci = hostvars["lazypull-soci-1"]
    assert soci["soci_snapshotter_ecr_registries"] and "stargz_snapshotter_ecr_registries" not in soci


def test_host_and_graph(aws_env, instances):
    host = plain(json.loads(ansible_inventory(aws_env, "--host", "lazypull-soci-1")))
    assert host["rollout_snapshotter"] == "soci"
    assert host["ansible_host"] == instances["lazypull-soci-1"]["ip"]
    graph = ansible_inventory(aws_env, "--graph", "snapshotter_stargz")
    assert graph.startswith("@snapshotter_stargz:"), graph
    assert sorted(re.findall(r"\|--(\S+)", graph)) == ["lazypull-stargz-1", "lazypull-stargz-2"], graph
