"""Writes small NIfTI files with nibabel (Debian python3-nibabel 5.0.0) and the values nibabel reads back, as an
independent reference for the C# NIfTI reader. Run from this folder: python3 make_nifti_fixtures.py
Output: nib_*.nii[.gz] and nifti_expected.json (shape, zooms, affine, qform/sform codes, scaled data x-fastest)."""
import json
import numpy as np
import nibabel as nib

rng = np.random.default_rng(7)
cases = []


def rot_affine(zooms, angle_deg, offset):
    a = np.deg2rad(angle_deg)
    r = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    aff = np.eye(4)
    aff[:3, :3] = r @ np.diag(zooms)
    aff[:3, 3] = offset
    return aff


def add(name, klass, data, endian, zooms, affine, slope=None, inter=None, qcode=1, scode=2):
    hdr = klass.header_class(endianness=endian)
    hdr.set_data_dtype(data.dtype.newbyteorder('='))
    img = klass(data, affine, header=hdr)
    img.header.set_zooms(zooms)
    img.set_qform(affine, code=qcode)
    img.set_sform(affine, code=scode)
    if slope is not None:
        img.header.set_slope_inter(slope, inter)
    nib.save(img, name)
    back = nib.load(name)
    # Reference values: nibabel's scaled data, x fastest (Fortran order), and its affine (sform if code > 0).
    fdata = np.asarray(back.dataobj, dtype=np.float64) if slope is None else back.get_fdata()
    cases.append({
        "file": name,
        "version": 1 if klass is nib.Nifti1Image else 2,
        "big_endian": endian == '>',
        "datatype": int(back.header['datatype']),
        "shape": [int(s) for s in back.shape],
        "zooms": [float(z) for z in back.header.get_zooms()],
        "affine": [float(v) for v in back.affine[:3, :].ravel()],
        "qform_code": int(back.header['qform_code']),
        "sform_code": int(back.header['sform_code']),
        "qform": [float(v) for v in back.header.get_qform()[:3, :].ravel()],
        "scl_slope": None if slope is None else float(slope),
        "scl_inter": None if inter is None else float(inter),
        "values": [float(v) for v in fdata.ravel(order='F')],
    })


add("nib_n1_le_int16_scaled.nii.gz", nib.Nifti1Image, rng.integers(-300, 300, (3, 4, 5)).astype(np.int16), '<',
    (0.5, 0.7, 2.0), rot_affine((0.5, 0.7, 2.0), 30, (10, -20, 5)), slope=2.0, inter=-10.0)
add("nib_n1_be_float32.nii", nib.Nifti1Image, rng.normal(0, 100, (4, 3, 2)).astype('>f4'), '>',
    (1.0, 1.25, 3.0), rot_affine((1.0, 1.25, 3.0), 0, (0, 0, 0)), qcode=1, scode=0)
add("nib_n2_le_uint8.nii", nib.Nifti2Image, rng.integers(0, 255, (5, 2, 3)).astype(np.uint8), '<',
    (0.9, 0.9, 1.5), rot_affine((0.9, 0.9, 1.5), -45, (1, 2, 3)))
add("nib_n2_be_float64.nii.gz", nib.Nifti2Image, rng.normal(0, 1, (2, 3, 4)).astype('>f8'), '>',
    (2.0, 2.0, 2.0), rot_affine((2.0, 2.0, 2.0), 90, (-5, 5, 0)), qcode=1, scode=1)
add("nib_n1_le_uint16.nii", nib.Nifti1Image, rng.integers(0, 65535, (3, 3, 2)).astype(np.uint16), '<',
    (1, 1, 1), np.eye(4), qcode=0, scode=0)
add("nib_n1_be_int8.nii", nib.Nifti1Image, rng.integers(-128, 127, (2, 2, 3)).astype(np.int8), '>',
    (1, 1, 1), np.eye(4))
add("nib_n1_le_int32_4d1.nii.gz", nib.Nifti1Image, rng.integers(-100000, 100000, (3, 2, 2, 1)).astype(np.int32), '<',
    (1, 1, 1, 1), np.eye(4))
add("nib_n1_le_uint8_2d.nii", nib.Nifti1Image, rng.integers(0, 4, (4, 3)).astype(np.uint8), '<',
    (0.5, 0.25), np.eye(4))

# A 4-D series (dim[4] = 3) that the reader must refuse.
nib.save(nib.Nifti1Image(np.zeros((2, 2, 2, 3), np.int16), np.eye(4)), "nib_n1_4d3.nii")

with open("nifti_expected.json", "w") as f:
    json.dump({"generator": "make_nifti_fixtures.py", "nibabel": nib.__version__, "numpy": np.__version__,
               "cases": cases}, f, indent=1)
print(len(cases), "cases")
