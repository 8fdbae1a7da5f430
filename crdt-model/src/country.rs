//! ICAO 9303 nationality and issuing-state codes (ISO 3166-1 alpha-3 plus
//! the ICAO-specific codes found in machine-readable zones).

use crate::error::ValidationError;

const ISO_ALPHA3: &str = "ABW AFG AGO AIA ALA ALB AND ARE ARG ARM ASM ATA ATF ATG AUS AUT AZE \
BDI BEL BEN BES BFA BGD BGR BHR BHS BIH BLM BLR BLZ BMU BOL BRA BRB BRN BTN BVT BWA \
CAF CAN CCK CHE CHL CHN CIV CMR COD COG COK COL COM CPV CRI CUB CUW CXR CYM CYP CZE \
DEU DJI DMA DNK DOM DZA ECU EGY ERI ESH ESP EST ETH FIN FJI FLK FRA FRO FSM GAB GBR \
GEO GGY GHA GIB GIN GLP GMB GNB GNQ GRC GRD GRL GTM GUF GUM GUY HKG HMD HND HRV HTI \
HUN IDN IMN IND IOT IRL IRN IRQ ISL ISR ITA JAM JEY JOR JPN KAZ KEN KGZ KHM KIR KNA \
KOR KWT LAO LBN LBR LBY LCA LIE LKA LSO LTU LUX LVA MAC MAF MAR MCO MDA MDG MDV MEX \
MHL MKD MLI MLT MMR MNE MNG MNP MOZ MRT MSR MTQ MUS MWI MYS MYT NAM NCL NER NFK NGA \
NIC NIU NLD NOR NPL NRU NZL OMN PAK PAN PCN PER PHL PLW PNG POL PRI PRK PRT PRY PSE \
PYF QAT REU ROU RUS RWA SAU SDN SEN SGP SGS SHN SJM SLB SLE SLV SMR SOM SPM SRB SSD \
STP SUR SVK SVN SWE SWZ SXM SYC SYR TCA TCD TGO THA TJK TKL TKM TLS TON TTO TUN TUR \
TUV TWN TZA UGA UKR UMI URY USA UZB VAT VCT VEN VGB VIR VNM VUT WLF WSM YEM ZAF ZMB ZWE";

/// Codes ICAO 9303 adds: Germany's `D`, British nationality classes, United
/// Nations and other organisations, stateless persons and refugees, Kosovo.
const ICAO_SPECIAL: &str = "D GBD GBN GBO GBP GBS UNO UNA UNK XBA XIM XCC XCE XCO XDC XEC XES XMP XOM XPO \
XXA XXB XXC XXX RKS EUE";

/// Validates and canonicalises a nationality or issuing-state code.
pub fn parse_country(field: &'static str, text: &str) -> Result<String, ValidationError> {
    let code = text.trim().to_ascii_uppercase();
    let known = ISO_ALPHA3.split_whitespace().chain(ICAO_SPECIAL.split_whitespace()).any(|c| c == code);
    if known { Ok(code) } else { Err(ValidationError::UnknownCountry { field, value: text.to_string() }) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn central_asian_codes_are_known_and_canonicalised() {
        for code in ["KAZ", "kgz", " TJK", "TKM", "UZB", "AFG", "RUS", "D", "XXA"] {
            assert!(parse_country("nationality", code).is_ok(), "{code}");
        }
        assert_eq!(parse_country("nationality", "tjk").ok().as_deref(), Some("TJK"));
    }

    #[test]
    fn two_letter_and_invented_codes_are_rejected() {
        for code in ["KZ", "XYZ", "", "Kazakhstan"] {
            assert!(parse_country("nationality", code).is_err(), "{code}");
        }
    }
}
