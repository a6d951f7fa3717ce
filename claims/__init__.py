"""The catalogue of claims (C1-C13), one file per claim.

In a checkout this is `claims/` (`pytest claims/`); installed, it is the package
`mcis_claims.catalogue` (`pytest --pyargs mcis_claims.catalogue`, from any directory). Being a
package gives each claim module a unique name (`claims.test_c1_plateaus` or
`mcis_claims.catalogue.test_c1_plateaus`), so a user's own `test_c1_*.py` never clashes with it.
"""
