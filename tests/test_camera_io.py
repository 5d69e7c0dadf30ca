"""COLMAP and transforms.json import/export: conventions (a known point lands on its known
pixel), pycolmap as the oracle for the binary and text formats, round trips, bad files."""

import json
import math
import struct

import numpy as np
import pycolmap
import pytest
import torch
from PIL import Image
from scipy.spatial.transform import Rotation

from render_core.camera import Camera
from render_core.camera_io import (
    CameraFileError,
    CameraRecord,
    cameras_from_records,
    read_colmap,
    read_transforms,
    records_from_cameras,
    write_colmap_binary,
    write_colmap_text,
    write_transforms,
)

pytestmark = pytest.mark.usefixtures("float64_default")

CAMS = {  # id: (model, width, height, params)
    1: ("PINHOLE", 320, 240, [300.0, 310.0, 150.5, 128.25]),
    2: ("SIMPLE_PINHOLE", 200, 150, [180.0, 97.0, 80.0]),
    3: ("SIMPLE_RADIAL", 320, 240, [290.0, 160.0, 120.0, -0.05]),
    4: ("RADIAL", 320, 240, [290.0, 161.0, 119.0, -0.05, 0.01]),
    5: ("OPENCV", 640, 480, [500.0, 510.0, 320.5, 240.25, -0.1, 0.02, 0.001, -0.002]),
}


def _opencv_pixel(r_cv, t_cv, k, x):
    """The plain OpenCV pinhole formula u = fx X/Z + cx, v = fy Y/Z + cy."""
    xc = r_cv @ x + t_cv
    return np.array([k[0] * xc[0] / xc[2] + k[2], k[1] * xc[1] / xc[2] + k[3]])


def _pinhole(model, params):
    if model in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL"):
        return params[0], params[0], params[1], params[2]
    return tuple(params[:4])


def _poses(n, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        rot = Rotation.from_rotvec(rng.normal(size=3) * 0.5)
        out.append((rot, np.array([*rng.uniform(-0.4, 0.4, 2), rng.uniform(3, 5)])))
    return out


def _pixel_of(rec, x):
    cam = rec.to_camera(dtype=torch.float64, ignore_distortion=True)
    return cam.to_pixels(torch.tensor(x)[None], rec.width, rec.height)[0, 0].numpy()


@pytest.fixture(scope="module")
def colmap_dir(tmp_path_factory):
    """A reconstruction written by pycolmap (binary in bin/, text in txt/)."""
    rec = pycolmap.Reconstruction()
    for cid, (model, w, h, params) in CAMS.items():
        cam = pycolmap.Camera.create_from_model_name(cid, model, 100.0, w, h)
        cam.params = params
        rec.add_camera_with_trivial_rig(cam)
    rng = np.random.default_rng(1)
    for i, (rot, t) in enumerate(_poses(7)):
        im = pycolmap.Image(image_id=10 + i, name=f"sub/img {i}.jpg", camera_id=1 + i % 5)
        im.points2D = pycolmap.Point2DList(
            [pycolmap.Point2D(rng.uniform(0, 100, 2)) for _ in range(4)])
        rec.add_image_with_trivial_frame(im, pycolmap.Rigid3d(pycolmap.Rotation3d(
            rot.as_quat()), t))  # scipy's quaternion is x y z w, as Rotation3d takes it
    for j in range(5):
        track = pycolmap.Track()
        pid = rec.add_point3D(rng.normal(size=3), track,
                              rng.integers(0, 256, 3).astype(np.uint8))
        rec.add_observation(pid, pycolmap.TrackElement(10 + j, j % 4))
    root = tmp_path_factory.mktemp("colmap")
    (root / "bin").mkdir()
    (root / "txt").mkdir()
    rec.write_binary(str(root / "bin"))
    rec.write_text(str(root / "txt"))
    return root, rec


@pytest.mark.parametrize("fmt", ["bin", "txt"])
def test_colmap_reader_matches_pycolmap(colmap_dir, fmt):
    root, rec = colmap_dir
    model = read_colmap(root / fmt)
    assert [r.image_id for r in model.records] == sorted(rec.images)
    x = np.array([0.1, -0.2, 0.3])
    for r in model.records:
        im = rec.images[r.image_id]
        cam = rec.cameras[im.camera_id]
        assert r.image == im.name and r.camera_id == im.camera_id
        assert (r.model, r.width, r.height) == (cam.model_name, cam.width, cam.height)
        np.testing.assert_allclose(r.params, cam.params, rtol=0, atol=0)
        r_cv = im.cam_from_world().rotation.matrix()
        t_cv = im.cam_from_world().translation
        np.testing.assert_allclose(r.R, np.diag([1, -1, -1]) @ r_cv, atol=1e-12)
        np.testing.assert_allclose(r.t, np.diag([1, -1, -1]) @ t_cv, atol=1e-12)
        raw = model.raw.images[r.image_id]
        np.testing.assert_allclose(raw.xys, [p.xy for p in im.points2D], rtol=0, atol=0)
        # a known point: our camera's pixel equals the OpenCV formula and, for pinhole models,
        # pycolmap's own projection
        expected = _opencv_pixel(r_cv, t_cv, _pinhole(cam.model_name, cam.params), x)
        np.testing.assert_allclose(_pixel_of(r, x), expected, atol=1e-9)
        if cam.model_name in ("PINHOLE", "SIMPLE_PINHOLE"):
            np.testing.assert_allclose(_pixel_of(r, x), cam.img_from_cam(r_cv @ x + t_cv),
                                       atol=1e-9)
    assert len(model.points) == rec.num_points3D()
    assert sorted(model.raw.points3D) == sorted(rec.points3D)
    for (pid, ours), xyz, rgb in zip(model.raw.points3D.items(), model.points, model.colors,
                                     strict=True):
        p = rec.points3D[pid]
        np.testing.assert_allclose(xyz, p.xyz, rtol=0, atol=0)
        assert ours.xyz == tuple(xyz) and list(rgb) == list(p.color)
        assert list(ours.image_ids) == [e.image_id for e in p.track.elements]
        assert list(ours.point2D_idxs) == [e.point2D_idx for e in p.track.elements]


def test_colmap_round_trips(colmap_dir, tmp_path):
    root, rec = colmap_dir
    first = read_colmap(root / "bin")
    write_colmap_text(tmp_path / "t", first)
    write_colmap_binary(tmp_path / "b", first)
    for sub in ("t", "b"):
        again = read_colmap(tmp_path / sub)
        _same_raw(again.raw, first.raw)
        # and pycolmap reads what we wrote
        back = pycolmap.Reconstruction(str(tmp_path / sub))
        assert back.num_images() == rec.num_images() and back.num_points3D() == 5
        for iid, im in rec.images.items():
            np.testing.assert_allclose(back.images[iid].cam_from_world().matrix(),
                                       im.cam_from_world().matrix(), atol=0, rtol=0)
    # records alone (as after a fit): cameras and poses survive, to 1e-12
    write_colmap_text(tmp_path / "r", first.records)
    again = read_colmap(tmp_path / "r").records
    for a, b in zip(first.records, again, strict=True):
        _same_record(a, b)


def _same_raw(a, b):
    assert a.cameras == b.cameras
    assert list(a.images) == list(b.images) and list(a.points3D) == list(b.points3D)
    for k in a.images:
        ia, ib = a.images[k], b.images[k]
        assert (ia.qvec, ia.tvec, ia.camera_id, ia.name) == (ib.qvec, ib.tvec, ib.camera_id,
                                                             ib.name)
        assert np.array_equal(ia.xys, ib.xys) and np.array_equal(ia.point3D_ids, ib.point3D_ids)
    for k in a.points3D:
        pa, pb = a.points3D[k], b.points3D[k]
        assert (pa.xyz, pa.rgb, pa.error) == (pb.xyz, pb.rgb, pb.error)
        assert np.array_equal(pa.image_ids, pb.image_ids)
        assert np.array_equal(pa.point2D_idxs, pb.point2D_idxs)


def _same_record(a, b, atol=1e-12):
    assert (a.image, a.width, a.height, a.model) == (b.image, b.width, b.height, b.model)
    np.testing.assert_allclose(a.params, b.params, rtol=0, atol=atol)
    np.testing.assert_allclose(a.R, b.R, rtol=0, atol=atol)
    np.testing.assert_allclose(a.t, b.t, rtol=0, atol=atol)


def _c2w_opengl(rot, centre):
    """Camera-to-world (OpenGL axes) of a camera whose OpenCV world-to-camera rotation is rot."""
    c2w = np.eye(4)
    c2w[:3, :3] = rot.as_matrix().T @ np.diag([1.0, -1.0, -1.0])
    c2w[:3, 3] = centre
    return c2w


def test_transforms_known_point_and_angle_and_overrides(tmp_path):
    (tmp_path / "train").mkdir()
    Image.new("RGB", (64, 48)).save(tmp_path / "train" / "r_0.png")
    Image.new("RGB", (64, 48)).save(tmp_path / "train" / "r_1.png")
    poses = _poses(3, seed=5)
    centres = [-(rot.as_matrix().T @ t) for rot, t in poses]
    data = {
        "camera_angle_x": 0.69,  # no w/h: read from the image header
        "frames": [
            {"file_path": "./train/r_0",
             "transform_matrix": _c2w_opengl(poses[0][0], centres[0]).tolist()},
            {"file_path": "./train/r_1.png", "fl_x": 70.0, "fl_y": 72.0, "cx": 30.0, "cy": 20.5,
             "transform_matrix": _c2w_opengl(poses[1][0], centres[1]).tolist()},
            {"file_path": "missing", "w": 100, "h": 80,
             "transform_matrix": _c2w_opengl(poses[2][0], centres[2]).tolist()},
        ],
    }
    (tmp_path / "transforms.json").write_text(json.dumps(data))
    recs = read_transforms(tmp_path / "transforms.json")
    assert recs[0].path == tmp_path / "train" / "r_0.png" and recs[2].path is None
    assert (recs[0].width, recs[0].height, recs[2].width) == (64, 48, 100)
    f0 = 0.5 * 64 / math.tan(0.5 * 0.69)
    f2 = 0.5 * 100 / math.tan(0.5 * 0.69)
    ks = [(f0, f0, 32.0, 24.0), (70.0, 72.0, 30.0, 20.5), (f2, f2, 50.0, 40.0)]
    x = np.array([0.2, 0.1, -0.3])
    for rec, (rot, t), k in zip(recs, poses, ks, strict=True):
        assert rec.model == "PINHOLE"
        np.testing.assert_allclose(rec.params, k, atol=1e-12)
        np.testing.assert_allclose(_pixel_of(rec, x), _opencv_pixel(rot.as_matrix(), t, k, x),
                                   atol=1e-9)


def test_transforms_round_trip_and_fitted_export(tmp_path):
    poses = _poses(4, seed=7)
    frames = []
    for i, (rot, t) in enumerate(poses):
        fr = {"file_path": f"images/{i:04d}.jpg" if i != 3 else "images/shot [1,2].jpg",
              "transform_matrix": _c2w_opengl(rot, -(rot.as_matrix().T @ t)).tolist()}
        if i == 2:
            fr.update(fl_x=410.0, k1=0.0, p1=0.0)
        frames.append(fr)
    data = {"w": 400, "h": 300, "fl_x": 380.0, "fl_y": 381.0, "cx": 201.0, "cy": 149.0,
            "k1": -0.03, "k2": 0.004, "p1": 0.0005, "p2": -0.0002, "aabb_scale": 4,
            "frames": frames}
    src = tmp_path / "transforms.json"
    src.write_text(json.dumps(data, indent=1))
    first = read_transforms(src)
    assert first[0].model == "OPENCV" and first[2].params[0] == 410.0
    assert first[2].params[4:] == (0.0, 0.004, 0.0, -0.0002)  # k1, p1 overridden
    assert first[1].params[4:] == (-0.03, 0.004, 0.0005, -0.0002)
    write_transforms(tmp_path / "out.json", first, extra={"aabb_scale": 4})
    again = read_transforms(tmp_path / "out.json")
    for a, b in zip(first, again, strict=True):
        _same_record(a, b)
    assert json.loads((tmp_path / "out.json").read_text())["aabb_scale"] == 4
    # COLMAP -> transforms.json -> the same pixel
    x = np.array([0.05, -0.1, 0.2])
    for a, b in zip(first, again, strict=True):
        np.testing.assert_allclose(_pixel_of(a, x), _pixel_of(b, x), atol=1e-9)
    # fitted cameras (orbit, float32) exported and read back give the same camera
    cams = Camera.orbit([0.0, 40.0, 200.0], [10.0, -20.0, 35.0], [2.5, 3.0, 3.5],
                        at=(0.1, 0.2, -0.1), fov=[40.0, 50.0, 55.0], aspect=4 / 3, near=0.01)
    cams = cams.to(dtype=torch.float32)
    recs = records_from_cameras(cams, 400, 300, ["a.png", "b.png", "c.png"])
    write_transforms(tmp_path / "fit.json", recs)
    back = cameras_from_records(read_transforms(tmp_path / "fit.json"), near=0.01,
                                dtype=torch.float32)
    torch.testing.assert_close(back.proj, cams.proj, atol=1e-5, rtol=0)
    torch.testing.assert_close(back.view, cams.view, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="distortion"):
        first[0].to_camera()


def test_colmap_known_point_from_handwritten_text(tmp_path):
    rot, t = _poses(1, seed=9)[0]
    q = rot.as_quat()  # x y z w
    (tmp_path / "cameras.txt").write_text("# comment\n1 PINHOLE 120 90 100 95 40.5 50.25\n")
    pose = " ".join(repr(float(v)) for v in (q[3], q[0], q[1], q[2], *t))
    (tmp_path / "images.txt").write_text(f"# comment\n3 {pose} 1 a.png\n\n")
    (rec,) = read_colmap(tmp_path).records
    x = np.array([-0.3, 0.25, 0.1])
    expected = _opencv_pixel(rot.as_matrix(), t, (100, 95, 40.5, 50.25), x)
    np.testing.assert_allclose(_pixel_of(rec, x), expected, atol=1e-9)
    # the undistorted record of a pinhole is itself
    img = np.zeros((90, 120, 3), np.float32)
    _, _, valid, same = rec.undistort(img)
    assert valid.all() and same.params == rec.params and same.model == "PINHOLE"


def _write(folder, files):
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


GOOD_CAM = "1 PINHOLE 10 10 5 5 5 5\n"
GOOD_IM = "1 1 0 0 0 0 0 1 1 a.png\n\n"


@pytest.mark.parametrize("files, where, problem", [
    ({"cameras.txt": "# c\n\n1 PINHOLE 10 ten 5 5 5 5\n", "images.txt": GOOD_IM},
     "cameras.txt, line 3", "expected numbers"),
    ({"cameras.txt": "1 OPENCV_FISHEYE 10 10 5 5 5 5 0 0 0 0\n", "images.txt": GOOD_IM},
     "cameras.txt, line 1", "not supported"),
    ({"cameras.txt": "1 OPENCV 10 10 5 5 5 5\n", "images.txt": GOOD_IM},
     "cameras.txt, line 1", "takes 8 parameters"),
    ({"cameras.txt": GOOD_CAM, "images.txt": "1 1 0 0 0 0 0 1 7 a.png\n\n"},
     "images.txt, line 1", "camera id 7"),
    ({"cameras.txt": GOOD_CAM, "images.txt": "1 0 0 0 0 0 0 1 1 a.png\n\n"},
     "images.txt, line 1", "quaternion is zero"),
    ({"cameras.txt": GOOD_CAM, "images.txt": "1 1 0 0 0 0 0 1 1 a.png\n1 2\n"},
     "images.txt, line 2", "triples"),
    ({"cameras.txt": GOOD_CAM, "images.txt": "1 1 0 0 0 0 0 1 1 ../../secret.png\n\n"},
     "images.txt, image 1", "leaves the folder"),
    ({"cameras.txt": GOOD_CAM, "images.txt": "1 1 0 0 0 0 0 1 1 /etc/passwd\n\n"},
     "images.txt, image 1", "absolute"),
    ({"cameras.txt": GOOD_CAM, "images.txt": GOOD_IM, "points3D.txt": "1 0 0 0 300 0 0 1\n"},
     "points3D.txt, line 1", "0..255"),
])
def test_bad_colmap_text(tmp_path, files, where, problem):
    folder = _write(tmp_path / "m", files)
    with pytest.raises(CameraFileError, match=problem) as err:
        read_colmap(folder)
    assert where in str(err.value) and str(folder) in str(err.value)


def test_bad_colmap_binary(colmap_dir, tmp_path):
    root, _ = colmap_dir
    data = (root / "bin" / "images.bin").read_bytes()
    for name, blob, problem in [
        ("cut", data[:len(data) - 7], "file ends inside"),
        ("huge", struct.pack("<Q", 2**40) + data[8:], "more than the file can hold"),
        ("tail", data + b"\0\0", "unexpected bytes"),
    ]:
        folder = tmp_path / name
        folder.mkdir()
        (folder / "cameras.bin").write_bytes((root / "bin" / "cameras.bin").read_bytes())
        (folder / "images.bin").write_bytes(blob)
        with pytest.raises(CameraFileError, match=problem) as err:
            read_colmap(folder)
        assert "images.bin, " in str(err.value) and "byte" in str(err.value)
    with pytest.raises(CameraFileError, match="no COLMAP model"):
        read_colmap(tmp_path / "nothing-here")


M = np.eye(4).tolist()


@pytest.mark.parametrize("text, where, problem", [
    ('{"frames": [\n  {"file_path": "a.png",}\n]}', "line 2", "invalid JSON"),
    ('{"fl_x": 10}', None, "'frames' list"),
    (json.dumps({"w": 8, "h": 8, "fl_x": 5, "frames": [
        {"file_path": "a", "transform_matrix": M}, {"file_path": "b"}]}), "frame 1 ('b')",
     "transform_matrix"),
    (json.dumps({"w": 8, "h": 8, "fl_x": 5, "frames": [
        {"file_path": "a", "transform_matrix": (2 * np.eye(4)).tolist()}]}), "frame 0",
     "not a rotation"),
    (json.dumps({"w": 8, "h": 8, "fl_x": 5, "frames": [
        {"file_path": "../../x.png", "transform_matrix": M}]}), "frame 0", "leaves the folder"),
    (json.dumps({"w": 8, "h": 8, "fl_x": 5, "frames": [
        {"file_path": "/tmp/x.png", "transform_matrix": M}]}), "frame 0", "absolute"),
    (json.dumps({"w": 8, "h": 8, "fl_x": 5, "is_fisheye": True, "frames": [
        {"file_path": "a", "transform_matrix": M}]}), "frame 0", "fisheye"),
    (json.dumps({"fl_x": 5, "frames": [{"file_path": "nope", "transform_matrix": M}]}),
     "frame 0", "w/h"),
    (json.dumps({"w": 8, "h": 8, "frames": [{"file_path": "a", "transform_matrix": M}]}),
     "frame 0", "focal length"),
    (json.dumps({"w": 8, "h": 8, "fl_x": "5", "frames": [
        {"file_path": "a", "transform_matrix": M}]}), "frame 0", "fl_x must be"),
])
def test_bad_transforms(tmp_path, text, where, problem):
    path = tmp_path / "transforms.json"
    path.write_text(text)
    with pytest.raises(CameraFileError, match=problem) as err:
        read_transforms(path)
    assert str(path) in str(err.value)
    if where:
        assert f"{path}, {where}" in str(err.value)


def test_records_are_plain_data():
    rec = CameraRecord("a.png", 10, 8, "PINHOLE", (9.0, 9.0, 5.0, 4.0), np.eye(3), np.zeros(3))
    assert rec.intrinsics.cx == 5.0 and not rec.distorted
    np.testing.assert_allclose(rec.camera_to_world(), np.eye(4))


def test_undistorted_record_sees_the_point_where_the_photo_shows_it():
    """A distorted COLMAP camera: after CameraRecord.undistort the pinhole projects a known point
    onto the undistorted position of the pixel where pycolmap's distorted camera shows it."""
    model, w, h, params = CAMS[5]
    rot, t = _poses(1, seed=11)[0]
    rec = CameraRecord("p.png", w, h, model, tuple(params),
                       np.diag([1.0, -1.0, -1.0]) @ rot.as_matrix(),
                       np.diag([1.0, -1.0, -1.0]) @ t)
    img = np.zeros((h, w), np.float32)
    _, _, valid, pin = rec.undistort(img, keep="valid")
    assert pin.model == "PINHOLE" and valid.all()
    cam = pycolmap.Camera.create_from_model_name(1, model, 100.0, w, h)
    cam.params = params
    pts = np.random.default_rng(3).uniform(-0.5, 0.5, (20, 3))
    seen = cam.img_from_cam(pts @ rot.as_matrix().T + t)  # distorted pixels in the photo
    normalized = cam.cam_from_img(seen)  # pycolmap's own inverse of its distortion
    fx, fy, cx, cy = pin.params
    expected = normalized * [fx, fy] + [cx, cy]
    got = pin.to_camera(dtype=torch.float64).to_pixels(torch.tensor(pts), w, h)[0].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_transforms_masks_and_image_paths(tmp_path):
    (tmp_path / "masks").mkdir()
    Image.new("L", (8, 6)).save(tmp_path / "masks" / "a.png")
    base = {"w": 8, "h": 6, "fl_x": 7.0}
    data = {**base, "frames": [{"file_path": "a.jpg", "mask_path": "masks/a",
                                "transform_matrix": M}]}
    (tmp_path / "t.json").write_text(json.dumps(data))
    (rec,) = read_transforms(tmp_path / "t.json")
    assert rec.mask == "masks/a" and rec.mask_path == tmp_path / "masks" / "a.png"
    # an absolute image path inside the output folder is written relative; outside is refused
    rec.image = str(tmp_path / "sub" / "a.jpg")
    write_transforms(tmp_path / "o.json", [rec])
    frame = json.loads((tmp_path / "o.json").read_text())["frames"][0]
    assert frame["file_path"] == "sub/a.jpg" and frame["mask_path"] == "masks/a"
    rec.image = str(tmp_path.parent / "elsewhere.jpg")
    with pytest.raises(ValueError, match="not inside"):
        write_transforms(tmp_path / "o.json", [rec])
    bad = {**base, "frames": [{"file_path": "a.jpg", "mask_path": "../m.png",
                               "transform_matrix": M}]}
    (tmp_path / "b.json").write_text(json.dumps(bad))
    with pytest.raises(CameraFileError, match="leaves the folder"):
        read_transforms(tmp_path / "b.json")
