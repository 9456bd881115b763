"""The shop: a small Django project whose slow work (sending email) runs on Conveyor."""
