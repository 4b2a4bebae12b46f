"""Device safety rules on recorded lsblk output (tests/data/lsblk): never a real disk."""

import json
from pathlib import Path

import pytest

from dpupose.board.devices import (
    check_device,
    describe,
    human_bytes,
    inspect_device,
    lsblk_argv,
    mmc_card_type,
    refusals,
    root_devno,
)
from dpupose.errors import DeviceError

IMAGE = 8 * 1024**3  # an 8 GiB image


def codes(info, root=None):
    return sorted(r.code for r in refusals(info, root))


def test_lsblk_command_line_asks_for_json_bytes_and_mountpoints():
    argv = lsblk_argv("/dev/sdb")
    assert argv[:4] == ["lsblk", "--json", "-b", "-o"]
    assert argv[-1] == "/dev/sdb"
    for column in ("SIZE", "MODEL", "RM", "TRAN", "TYPE", "MOUNTPOINTS", "MAJ:MIN", "PKNAME"):
        assert column in argv[4].split(",")


def test_unmounted_usb_card_is_accepted(lsblk_fixture):
    info = inspect_device(lsblk_fixture("usb_card_reader.json"), "/dev/sdb")
    assert (info.size, info.model, info.transport, info.removable) == (
        15931539456,
        "STORAGE DEVICE",
        "usb",
        True,
    )
    assert [c.name for c in info.children] == ["sdb1", "sdb2"]
    assert codes(info) == []
    check_device(info, IMAGE, force=False)
    text = describe(info)
    assert "14.8 GiB (15931539456 bytes)" in text
    assert "STORAGE DEVICE" in text
    assert "sdb1: 100.0 MiB vfat 'PYNQ'" in text
    assert "WARNING" not in text and "16 GB" not in text


def test_mounted_card_is_refused_unless_forced(lsblk_fixture):
    info = inspect_device(lsblk_fixture("usb_card_reader_mounted.json"), "/dev/sdb")
    assert codes(info) == ["mounted"]
    with pytest.raises(DeviceError, match=r"/media/user/PYNQ.*unmount.*--force"):
        check_device(info, IMAGE, force=False)
    check_device(info, IMAGE, force=True)
    assert "mounted at /media/user/PYNQ" in describe(info)


@pytest.mark.parametrize(
    ("fixture", "device", "expected"),
    [
        ("nvme_system_disk.json", "/dev/nvme0n1", ["mounted", "non-removable", "system"]),
        ("sata_lvm_system_disk.json", "/dev/sda", ["mounted", "non-removable", "system"]),
        ("virtio_root_disk.json", "/dev/vda", ["mounted", "non-removable", "system"]),
        ("sata_data_disk.json", "/dev/sdd", ["non-removable"]),
    ],
)
def test_system_and_fixed_disks_are_refused(lsblk_fixture, fixture, device, expected):
    info = inspect_device(lsblk_fixture(fixture), device)
    assert codes(info) == expected
    with pytest.raises(DeviceError, match="refusing to write"):
        check_device(info, IMAGE, force=False)


def test_root_in_lvm_below_a_partition_counts_as_system_disk(lsblk_fixture):
    info = inspect_device(lsblk_fixture("sata_lvm_system_disk.json"), "/dev/sda")
    assert "/" in info.all_mounts() and "[SWAP]" in info.all_mounts()
    assert info.holds_root()


def test_system_disk_found_by_device_number_when_mountpoints_are_hidden(lsblk_fixture):
    # Inside a container lsblk may show no mount points; the device numbers of / still match.
    info = inspect_device(lsblk_fixture("sata_data_disk.json"), "/dev/sdd")
    assert "system" not in codes(info, root="8:1")
    assert "system" in codes(info, root="8:49")


def test_builtin_mmc_slot_counts_as_removable(lsblk_fixture):
    info = inspect_device(lsblk_fixture("mmc_slot_card.json"), "/dev/mmcblk0")
    assert info.removable
    assert codes(info) == []


def test_an_emmc_chip_is_not_taken_for_an_sd_slot(lsblk_fixture, tmp_path):
    """eMMC chips are mmcblk disks as well, with the same lsblk flags as an SD card in a built-in slot;
    the kernel tells them apart in /sys/block/NAME/device/type (MMC against SD)."""
    sys_root = tmp_path / "sys"
    for name, kind in (("mmcblk0", "MMC"), ("mmcblk1", "SD")):
        (sys_root / "block" / name / "device").mkdir(parents=True)
        (sys_root / "block" / name / "device" / "type").write_text(f"{kind}\n")
    assert mmc_card_type("mmcblk0", str(sys_root)) == "MMC"
    assert mmc_card_type("mmcblk1", str(sys_root)) == "SD"
    assert mmc_card_type("sdb", str(sys_root)) is None
    listing = lsblk_fixture("mmc_slot_card.json")
    emmc = inspect_device(listing, "/dev/mmcblk0", mmc_type=mmc_card_type("mmcblk0", str(sys_root)))
    assert codes(emmc) == ["non-removable"]
    with pytest.raises(DeviceError, match=r"/dev/mmcblk0 is not a removable disk \(eMMC\).*--force"):
        check_device(emmc, IMAGE, force=False)
    assert "eMMC, fixed" in describe(emmc)
    assert codes(inspect_device(listing, "/dev/mmcblk0", mmc_type="SD")) == []


def test_partition_and_read_only_card_are_refused_even_when_forced(lsblk_fixture):
    part = inspect_device(lsblk_fixture("usb_card_partition.json"), "/dev/sdb1")
    with pytest.raises(DeviceError, match=r"partition: write to /dev/sdb instead"):
        check_device(part, 1000, force=True)
    ro = inspect_device(lsblk_fixture("usb_card_read_only.json"), "/dev/sdb")
    with pytest.raises(DeviceError, match="read-only"):
        check_device(ro, 1000, force=True)


def test_image_larger_than_card_is_refused(lsblk_fixture):
    info = inspect_device(lsblk_fixture("usb_card_8gb.json"), "/dev/sdc")
    check_device(info, info.size, force=False)  # exactly fits
    with pytest.raises(DeviceError, match=r"larger than /dev/sdc.*use a larger card"):
        check_device(info, info.size + 1, force=False)
    assert "PYNQ wants a card of 16 GB or more; this one holds 7.9 GB" in describe(info)


def test_old_lsblk_format_with_strings_is_understood(lsblk_fixture):
    info = inspect_device(lsblk_fixture("old_format_mounted.json"), "/dev/sdb")
    assert info.size == 15931539456 and info.removable and not info.read_only
    assert info.model == "STORAGE DEVICE"
    assert codes(info) == ["mounted"]


def test_device_missing_from_listing(lsblk_fixture):
    with pytest.raises(DeviceError, match="does not list"):
        inspect_device('{"blockdevices": []}', "/dev/sdz")


def _one_disk(**fields) -> str:
    node = {"name": "sdc", "path": "/dev/sdc", "size": 16_000_000_000, "model": "X", "rm": False, "hotplug": False,
            "tran": None, "type": "disk", "ro": False, "mountpoints": [None], "maj:min": "8:32"}  # fmt: skip
    return json.dumps({"blockdevices": [{**node, **fields}]})


@pytest.mark.parametrize(
    ("fields", "removable"),
    [
        ({}, False),  # a fixed disk
        ({"rm": True}, True),
        ({"hotplug": "1"}, True),  # util-linux before 2.33 writes flags as strings
        ({"hotplug": "true"}, True),
        ({"rm": "0", "hotplug": "0"}, False),
        ({"tran": "usb"}, True),
        ({"tran": "mmc"}, True),  # an SD slot reporting RM=0
        ({"name": "mmcblk1", "path": "/dev/mmcblk1"}, True),  # one with no TRAN either
    ],
)
def test_each_sign_of_a_removable_card_counts_on_its_own(fields, removable):
    path = fields.get("path", "/dev/sdc")
    info = inspect_device(_one_disk(**fields), path)
    assert info.removable is removable
    assert ("non-removable" in codes(info)) is not removable


def test_a_loop_device_is_a_disk_and_a_partition_refusal_offers_no_force():
    # A loop device (losetup of an image file) can be written as a card is.
    assert codes(inspect_device(_one_disk(type="loop", rm=True), "/dev/sdc")) == []
    part = inspect_device(_one_disk(type="part", pkname="sdc", rm=True, name="sdc1", path="/dev/sdc1"), "/dev/sdc1")
    with pytest.raises(DeviceError) as exc:
        check_device(part, 1000, force=False)
    assert str(exc.value) == "refusing to write: /dev/sdc1 is a partition: write to /dev/sdc instead"


def test_the_system_disk_is_found_by_a_partition_s_device_number(lsblk_fixture):
    info = inspect_device(lsblk_fixture("usb_card_reader.json"), "/dev/sdb")
    assert [codes(info, root=f"8:{n}") for n in (16, 17, 18, 19)] == [["system"], ["system"], ["system"], []]


def test_sizes_are_shown_in_binary_units():
    assert [human_bytes(n) for n in (1023, 1024, 1536, 1024**2 - 1, 1024**3, 5 * 1024**5)] == [
        "1023 B", "1.0 KiB", "1.5 KiB", "1024.0 KiB", "1.0 GiB", "5120.0 TiB",
    ]  # fmt: skip


def test_root_devno_is_the_device_of_the_root_mount():
    # /proc/self/mountinfo's third field is the major:minor of each mount's device, `/` among them.
    rows = [line.split() for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    root = [r[2] for r in rows if r[4] == "/"]
    if not root:
        pytest.skip("no / in /proc/self/mountinfo")
    assert root_devno() == root[-1]
