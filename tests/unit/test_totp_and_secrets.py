from __future__ import annotations

import pyotp
import pytest

from control_plane.auth.totp import SecretBox, matching_step, new_secret


def test_matching_step_accepts_one_step_either_side() -> None:
    secret = new_secret()
    totp = pyotp.TOTP(secret)
    now = 1_800_000_000.0
    step = int(now // 30)
    assert matching_step(secret, totp.at(now), now=now) == step
    assert matching_step(secret, totp.at(now - 30), now=now) == step - 1
    assert matching_step(secret, totp.at(now + 30), now=now) == step + 1
    assert matching_step(secret, totp.at(now - 60), now=now) is None
    assert matching_step(secret, "12345", now=now) is None
    assert matching_step(secret, "abcdef", now=now) is None


def test_secret_box_round_trips_and_refuses_another_key() -> None:
    box = SecretBox("k" * 40)
    sealed = box.seal("JBSWY3DPEHPK3PXP")
    assert "JBSWY3DPEHPK3PXP" not in sealed
    assert box.open(sealed) == "JBSWY3DPEHPK3PXP"
    with pytest.raises(ValueError, match="ATRIUM_SECRET_KEY"):
        SecretBox("x" * 40).open(sealed)
