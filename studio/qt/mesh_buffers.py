"""The mesh's GPU buffers for the viewport: triangles (position, normal, colour, UV per corner),
wireframe edges and the texture, uploaded with moderngl.

The buffers are sized by what is uploaded, never by a count remembered from an earlier mesh: a
mesh whose vertex or face count changed between frames (remeshing, a new start) gets buffers and
vertex arrays of its own size, and the old ones are released.
"""

from __future__ import annotations

import moderngl
import numpy as np
import torch

import render_core as rc


class MeshBuffers:
    """The current mesh on the GPU of ``ctx``: :attr:`vao` (triangles, ``in_pos in_normal
    in_color in_uv``) for ``mesh_prog``, :attr:`edge_vao` (lines, ``in_pos in_color``) for
    ``line_prog`` and :attr:`texture`; the vertex arrays are None while there is no mesh."""

    def __init__(self, ctx: moderngl.Context, mesh_prog, line_prog):
        self.ctx, self._mesh_prog, self._line_prog = ctx, mesh_prog, line_prog
        self.vao = self.edge_vao = None
        self._vbo = self._ebo = None
        self.texture = ctx.texture((1, 1), 3, bytes([200, 200, 200]))
        self.corners = 0  # triangle corners in vao (3 per face)

    def _buffer(self, old, vao, data: np.ndarray, prog, layout: tuple):
        """``(buffer, vertex array)`` holding ``data``: ``old`` rewritten when its size fits,
        else both made anew (and the old released)."""
        if old is not None and old.size == data.nbytes:
            old.write(data.tobytes())
            return old, vao
        for obj in (vao, old):
            if obj is not None:
                obj.release()
        buf = self.ctx.buffer(data.tobytes())
        return buf, self.ctx.vertex_array(prog, [(buf, *layout)])

    def upload(self, vertices: np.ndarray, faces: np.ndarray, edges: np.ndarray,
               colors: np.ndarray | None, uvs: np.ndarray | None,
               face_uvs: np.ndarray | None) -> None:
        """Upload a mesh: ``vertices`` [V,3] float32, ``faces`` [F,3] and ``edges`` [E,2]
        int64 into them, linear ``colors`` [V,3] (None: grey), per-corner ``uvs`` [T,2] with
        ``face_uvs`` [F,3] (None: zeros). Raises ``ValueError`` when a face names a vertex
        beyond ``V``."""
        v, f = vertices, faces
        if len(f) == 0 or len(v) == 0:
            self.release_mesh()
            return
        if int(f.max()) >= len(v) or int(f.min()) < 0:
            raise ValueError(f"faces name vertex {int(f.max())} of a mesh of {len(v)} vertices")
        corners = f.reshape(-1)
        # The render's own normals (float64 for the sums), so GL and render shade alike.
        normals = rc.vertex_normals(torch.from_numpy(v.astype(np.float64)),
                                    torch.from_numpy(f)).numpy().astype(np.float32)
        colors = colors if colors is not None else np.full_like(v, 0.6)
        if uvs is not None and face_uvs is not None:
            uv = uvs[face_uvs.reshape(-1)]
        else:
            uv = np.zeros((len(corners), 2), np.float32)
        data = np.ascontiguousarray(
            np.concatenate([v[corners], normals[corners], colors[corners], uv], axis=1),
            dtype=np.float32)
        self._vbo, self.vao = self._buffer(
            self._vbo, self.vao, data, self._mesh_prog,
            ("3f 3f 3f 2f", "in_pos", "in_normal", "in_color", "in_uv"))
        self.corners = len(corners)
        ends = v[edges.reshape(-1)]
        edata = np.ascontiguousarray(
            np.concatenate([ends, np.tile([[0.95, 0.75, 0.3]], (len(ends), 1))], 1),
            dtype=np.float32)
        self._ebo, self.edge_vao = self._buffer(self._ebo, self.edge_vao, edata,
                                                self._line_prog, ("3f 3f", "in_pos", "in_color"))

    def upload_texture(self, texture: np.ndarray) -> None:
        """A linear [H,W,3] texture (row 0 the top, v = 1), shown sRGB-encoded."""
        srgb = rc.linear_to_srgb(np.clip(texture, 0, 1))
        # GL's first row is v=0, hence the flip.
        img = np.ascontiguousarray((srgb[::-1] * 255 + 0.5).astype(np.uint8))
        self.texture.release()
        self.texture = self.ctx.texture((texture.shape[1], texture.shape[0]), 3, img.tobytes())
        self.texture.filter = (moderngl.LINEAR, moderngl.LINEAR)
        self.texture.repeat_x = self.texture.repeat_y = False

    def release_mesh(self) -> None:
        for obj in (self.vao, self.edge_vao, self._vbo, self._ebo):
            if obj is not None:
                obj.release()
        self.vao = self.edge_vao = self._vbo = self._ebo = None
        self.corners = 0
