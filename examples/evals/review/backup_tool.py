"""Back up a project folder into a tarball."""

import subprocess
from datetime import date


def backup(src: str, dest_dir: str) -> str:
    dest = f"{dest_dir}/backup-{date.today().isoformat()}.tar.gz"
    subprocess.run(f"tar czf {dest} {src}", shell=True, check=True)
    return dest
