"""The Tencent Cloud SCF API (2018-04-16): TC3 signing and the actions."""
